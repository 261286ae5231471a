"""KPI API on SQLite and PostgreSQL: keys and scopes on every endpoint, each merchant sees only its own
figures in its own time zone, and bad ranges are 400s naming the parameter."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from lianjie.app import create_app
from lianjie.config import Settings
from lianjie.tenants import service
from lianjie.tenants.schemas import MerchantUpdate
from tests import warehouse_backends
from tests.analytics.scenario import at, order, profiles
from tests.endpoints import Endpoint
from tests.factories import bearer, make_admin_key, make_merchant, make_write_key

RANGE = "from=2026-10-01&to=2026-10-31"
ENDPOINTS = [
    Endpoint("GET", f"/api/v1/analytics/overview?{RANGE}", "analytics:read", route="/api/v1/analytics/overview"),
    Endpoint("GET", f"/api/v1/analytics/breakdown?{RANGE}&by=store", "analytics:read",
             route="/api/v1/analytics/breakdown"),
    Endpoint("GET", f"/api/v1/analytics/trend?{RANGE}&grain=week", "analytics:read", route="/api/v1/analytics/trend"),
    Endpoint("GET", "/api/v1/analytics/cohorts?from_month=2026-09&to_month=2026-10", "analytics:read",
             route="/api/v1/analytics/cohorts"),
    Endpoint("GET", "/api/v1/analytics/rfm", "analytics:read"),
]
IDS = [e.id for e in ENDPOINTS]


@pytest.fixture
def world(session_factory: sessionmaker[Session], db: Session) -> Iterator[dict[str, Any]]:
    """Merchant A (Shanghai) with three October orders, merchant B (Chicago) with one; a client whose
    app reads a warehouse holding both."""
    a, b = make_merchant(db, "huamei", "华美生活"), make_merchant(db, "yuedong", "悦动运动")
    service.update_merchant(db, b.id, MerchantUpdate(timezone="America/Chicago"))
    keys = {"a": make_admin_key(db, a), "b": make_admin_key(db, b), "write_a": make_write_key(db, a)}
    db.commit()
    chicago = dt.timezone(dt.timedelta(hours=-5))
    rows = {
        "orders": [order(a.id, 1, at("2026-10-01T00:00:00"), 1000), order(a.id, 2, at("2026-10-31T23:59:59"), 3000),
                   order(a.id, 1, at("2026-09-20T10:00:00"), 500),
                   # 1 October 00:30 in Chicago is 30 September in Shanghai: in B's range, not in A's terms.
                   order(b.id, 9, at("2026-10-01T00:30:00", chicago), 7000)],
        "identity_map": [*profiles(a.id, (1, 1), (2, 2)), *profiles(b.id, (9, 9))],
        "customer_traits": [{"tenant_id": a.id, "customer_id": 1, "rfm_group": "important_value"},
                            {"tenant_id": b.id, "customer_id": 9, "rfm_group": "general_retain"}],
    }
    app = create_app(Settings(), session_factory=session_factory)
    with warehouse_backends.open_backend(warehouse_backends.BACKENDS[0]) as con:
        warehouse_backends.fill(con, rows)
        app.state.warehouse = con
        with TestClient(app) as client:
            yield {"client": client, "merchant": a, **keys}


def get(world: dict[str, Any], path: str, secret: str | None) -> Any:
    return world["client"].get(path, headers=bearer(secret) if secret else {})


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_keys_and_scopes(db: Session, world: dict[str, Any], endpoint: Endpoint) -> None:
    assert get(world, endpoint.path, None).status_code == 401
    assert get(world, endpoint.path, world["write_a"]).status_code == 403
    unrelated = make_admin_key(db, world["merchant"], "orders:read")
    reader = make_admin_key(db, world["merchant"], "analytics:read")
    db.commit()
    assert get(world, endpoint.path, unrelated).status_code == 403
    response = get(world, endpoint.path, reader)
    assert response.status_code == 200, response.text


def test_each_merchant_sees_its_own_figures_in_its_own_zone(world: dict[str, Any]) -> None:
    path = ENDPOINTS[0].path
    a, b = get(world, path, world["a"]).json(), get(world, path, world["b"]).json()
    assert (a["timezone"], a["from"], a["to"], a["previous_from"]) == ("Asia/Shanghai", "2026-10-01", "2026-10-31",
                                                                       "2026-08-31")
    assert (a["current"]["orders"], a["current"]["gross_fen"], a["current"]["buyers"]) == (2, 4000, 2)
    assert (a["previous"]["orders"], a["change"]["orders"]) == (1, 1.0)
    assert (b["timezone"], b["current"]["orders"], b["current"]["gross_fen"]) == ("America/Chicago", 1, 7000)
    rfm = get(world, "/api/v1/analytics/rfm", world["b"]).json()
    assert [(g["rfm_group"], g["customers"]) for g in rfm["groups"]] == [("general_retain", 1)]
    stores = get(world, ENDPOINTS[1].path, world["b"]).json()
    assert [(r["key"], r["orders"]) for r in stores["rows"]] == [(None, 1)]


BAD = [
    ("/api/v1/analytics/overview?from=2026-13-01&to=2026-12-31", 400, "from"),
    ("/api/v1/analytics/overview?from=2026-10-01&to=yesterday", 400, "to"),
    ("/api/v1/analytics/overview?from=2026-10-02&to=2026-10-01", 400, "from"),
    ("/api/v1/analytics/breakdown?from=2024-01-01&to=2026-01-01&by=store", 400, "to"),  # 732 days
    ("/api/v1/analytics/trend?from=0001-01-01&to=0001-01-02", 400, "from"),
    ("/api/v1/analytics/overview?to=2026-10-01", 422, "from"),
    ("/api/v1/analytics/breakdown?from=2026-10-01&to=2026-10-31&by=city", 422, "by"),
    ("/api/v1/analytics/trend?from=2026-10-01&to=2026-10-31&grain=hour", 422, "grain"),
    ("/api/v1/analytics/cohorts?from_month=2026-1&to_month=2026-03", 400, "from_month"),
    ("/api/v1/analytics/cohorts?from_month=2026-04&to_month=2026-03", 400, "from_month"),
    ("/api/v1/analytics/cohorts?from_month=2023-01&to_month=2026-01", 400, "to_month"),  # 37 months
]


def test_bad_ranges_name_the_parameter(world: dict[str, Any]) -> None:
    answers = [(path, get(world, path, world["a"])) for path, _, _ in BAD]
    assert [(path, r.status_code, r.json()["error"]["field"].rsplit(".", 1)[-1]) for path, r in answers] == BAD


def test_the_longest_ranges_are_allowed(world: dict[str, Any]) -> None:
    two_years = get(world, "/api/v1/analytics/trend?from=2024-01-01&to=2025-12-31&grain=month", world["a"])
    assert (two_years.status_code, len(two_years.json()["points"])) == (200, 24)
    matrix = get(world, "/api/v1/analytics/cohorts?from_month=2023-11&to_month=2026-10", world["a"]).json()
    assert len(matrix["rows"]) == 36
    assert matrix["rows"][-2] == {"cohort": "2026-09", "customers": 1, "retained": [1, 1], "rates": [1.0, 1.0]}
