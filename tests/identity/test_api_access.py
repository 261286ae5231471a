"""Profile API: key checks on every endpoint and merchant isolation."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from lianjie.identity import merging
from tests.endpoints import Endpoint
from tests.factories import bearer, make_admin_key, make_merchant, make_write_key
from tests.identity.helpers import customers, msg, profile, send

P = "/api/v1/profiles/{profile}"
ENDPOINTS = [
    Endpoint("GET", "/api/v1/profiles", "profiles:read"),
    Endpoint("GET", P, "profiles:read", route="/api/v1/profiles/{profile_id}"),
    Endpoint("GET", P + "/events", "profiles:read", route="/api/v1/profiles/{profile_id}/events"),
    Endpoint("POST", P + "/tags", "profiles:write", {"add": ["vip"]}, route="/api/v1/profiles/{profile_id}/tags"),
    Endpoint("POST", P + "/consent", "profiles:write",
             {"purpose": "marketing", "channel": "sms", "granted": False, "source": "test"},
             route="/api/v1/profiles/{profile_id}/consent"),
    Endpoint("POST", P + "/export", "profiles:write", route="/api/v1/profiles/{profile_id}/export"),
    Endpoint("POST", P + "/erase", "profiles:write", route="/api/v1/profiles/{profile_id}/erase"),
    Endpoint("GET", "/api/v1/identity/merges", "profiles:read"),
    Endpoint("POST", "/api/v1/identity/merges/{merge}/undo", "profiles:write",
             route="/api/v1/identity/merges/{merge_id}/undo"),
    Endpoint("GET", "/api/v1/identity/conflicts", "profiles:read"),
    Endpoint("POST", "/api/v1/identity/conflicts/{conflict}/resolve", "profiles:write", {"decision": "keep"},
             route="/api/v1/identity/conflicts/{conflict_id}/resolve"),
    Endpoint("GET", "/api/v1/identity/suspicious", "profiles:read"),
    Endpoint("POST", "/api/v1/identity/blocked", "profiles:write", {"type": "phone", "value": "13912340000"}),
    Endpoint("GET", "/api/v1/identity/settings", "profiles:read"),
    Endpoint("PUT", "/api/v1/identity/settings", "profiles:write",
             {"types": {"user_id": {"priority": 100, "limit": 1}, "anonymous_id": {"priority": 1, "limit": 9}}}),
]
IDS = [e.id for e in ENDPOINTS]


@pytest.fixture
def world(db: Session) -> dict[str, Any]:
    """Merchant A with a merged customer and a conflict; merchant B with an all-powerful key of its own."""
    a, b = make_merchant(db, "huamei"), make_merchant(db, "yuedong", "悦动运动")
    send(db, a.id, msg(userId="U1", traits={"wechat_unionid": "X1"}, type_="identify"), msg(anonymousId="d1"))
    send(db, a.id, msg(userId="U1", anonymousId="d1"))
    send(db, a.id, msg("identify", userId="U2", traits={"wechat_unionid": "X2"}))
    send(db, a.id, msg("identify", userId="U1", traits={"wechat_unionid": "X2"}))
    world = {"a": a, "b": b, "full_a": make_admin_key(db, a), "full_b": make_admin_key(db, b),
             "write_a": make_write_key(db, a),
             "profile": customers(db, a.id, user_id="U1").pop(), "merge": merging.list_merges(db, a.id)[0][0].id,
             "conflict": merging.list_conflicts(db, a.id)[0][0].id}
    db.commit()
    return world


def call(client: TestClient, endpoint: Endpoint, secret: str | None, world: dict[str, Any]) -> Any:
    path = endpoint.path.format(**{k: world[k] for k in ("profile", "merge", "conflict")})
    return client.request(endpoint.method, path, json=endpoint.body, headers=bearer(secret) if secret else {})


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_keys_and_scopes(client: TestClient, db: Session, world: dict[str, Any], endpoint: Endpoint) -> None:
    assert call(client, endpoint, None, world).status_code == 401
    assert call(client, endpoint, "lja_wrong", world).status_code == 401
    assert call(client, endpoint, world["write_a"], world).status_code == 403
    unrelated = make_admin_key(db, world["a"], "stores:write")
    read_only = make_admin_key(db, world["a"], "profiles:read")
    db.commit()
    assert call(client, endpoint, unrelated, world).status_code == 403
    expected = 200 if endpoint.scope == "profiles:read" else 403
    assert call(client, endpoint, read_only, world).status_code == expected
    assert call(client, endpoint, world["full_a"], world).status_code == 200


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_another_merchant_cannot_reach_these_customers(client: TestClient, db: Session, world: dict[str, Any],
                                                       endpoint: Endpoint) -> None:
    response = call(client, endpoint, world["full_b"], world)
    if "{" in endpoint.path:
        assert response.status_code == 404, response.text
    elif endpoint.method == "GET" and endpoint.path != "/api/v1/identity/settings":
        body = response.json()
        assert (body["items"] if isinstance(body, dict) else body) == []
    person = profile(db, world["a"].id, user_id="U1")
    assert person.id == world["profile"]
    assert person.tags == []
    assert not person.erased
    assert person.merged_ids != []
    assert person.consent == []
    assert merging.list_conflicts(db, world["a"].id)[0][0].id == world["conflict"]
    a_settings = client.get("/api/v1/identity/settings", headers=bearer(world["full_a"])).json()
    assert "+8613912340000" not in a_settings["blocked"].get("phone", [])
    assert "anonymous_id" in a_settings["types"]
    assert a_settings["types"]["phone"]["limit"] == 3
