"""The table of every admin API endpoint with the scope it needs.

Each domain's API tests list their endpoints here-shaped; ``tests/test_endpoint_coverage.py`` checks
that together they name every ``/api/v1`` route, so no endpoint escapes the key, scope and
merchant-isolation checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from lianjie.tenants.models import Merchant
from tests.factories import make_admin_key


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    scope: str
    body: dict[str, Any] | None = None
    route: str = ""

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def template(self) -> str:
        """The route as FastAPI declares it (``{code}`` placeholders instead of sample values)."""
        return f"{self.method} {self.route or self.path}"


def check_keys_and_scopes(db: Session, merchant: Merchant, endpoint: Endpoint, send: Callable[[str | None], Any],
                          *, write_key: str, full_key: str, read_scope: str, unrelated_scope: str) -> None:
    """No key: 401; a write key, or an admin key without the scope: 403; a read-only key reads; the
    full key gets a 2xx. ``send(secret)`` calls the endpoint with that key."""
    assert send(None).status_code == 401
    assert send(write_key).status_code == 403
    unrelated = make_admin_key(db, merchant, unrelated_scope)
    read_only = make_admin_key(db, merchant, read_scope)
    db.commit()
    assert send(unrelated).status_code == 403
    expected = {200, 201} if endpoint.scope == read_scope else {403}
    assert send(read_only).status_code in expected
    response = send(full_key)
    assert response.status_code in {200, 201}, response.text
