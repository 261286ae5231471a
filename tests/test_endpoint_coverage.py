from __future__ import annotations

from fastapi.testclient import TestClient

from tests.analytics.test_api import ENDPOINTS as ANALYTICS
from tests.audience.segments.test_api import ENDPOINTS as SEGMENTS
from tests.audience.test_api import ENDPOINTS as AUDIENCE
from tests.commerce.test_catalogue import ENDPOINTS as CATALOGUE
from tests.commerce.test_orders import ENDPOINTS as ORDERS
from tests.identity.test_api_access import ENDPOINTS as IDENTITY
from tests.loyalty.coalition.test_api import ENDPOINTS as COALITION
from tests.loyalty.coupons.test_api import ENDPOINTS as COUPONS
from tests.loyalty.membership.test_api import ENDPOINTS as MEMBERSHIP
from tests.loyalty.test_api import ENDPOINTS as LOYALTY
from tests.tenants.test_api import ENDPOINTS as TENANTS
from tests.test_jobs_api import ENDPOINTS as JOBS


def test_every_admin_route_is_in_an_access_table(client: TestClient) -> None:
    """Each /api/v1 route is checked for 401/403 and merchant isolation by its domain's tests."""
    paths = client.get("/openapi.json").json()["paths"]
    routes = {f"{method.upper()} {path}" for path, ops in paths.items() if path.startswith("/api/v1")
              for method in ops}
    assert routes == {e.template for e in [*TENANTS, *IDENTITY, *CATALOGUE, *ORDERS, *LOYALTY, *MEMBERSHIP,
                                                *COALITION, *COUPONS, *AUDIENCE, *ANALYTICS,
                                                *SEGMENTS, *JOBS]}
