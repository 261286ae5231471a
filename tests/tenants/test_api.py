"""The tenants HTTP API: behaviour, key checks on every endpoint, and merchant isolation."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from lianjie.tenants import keys
from tests.endpoints import Endpoint
from tests.factories import bearer, make_admin_key, make_guide, make_merchant, make_store, make_write_key

STORE = {"code": "GZ001", "name": "广州天河店", "city": "广州", "province": "广东", "type": "mall"}
GUIDE = {"staff_no": "G100", "name": "陈静", "role": "guide", "store_code": "SH001"}

# Every /api/v1 route of the tenants domain, with the scope it needs (see tests/endpoints.py).
ENDPOINTS = [
    Endpoint("GET", "/api/v1/merchant", "merchant:read"),
    Endpoint("PATCH", "/api/v1/merchant", "merchant:write", {"name": "新名字"}),
    Endpoint("GET", "/api/v1/stores", "stores:read"),
    Endpoint("POST", "/api/v1/stores", "stores:write", STORE),
    Endpoint("GET", "/api/v1/stores/SH001", "stores:read", route="/api/v1/stores/{code}"),
    Endpoint("PATCH", "/api/v1/stores/SH001", "stores:write", {"name": "上海旗舰店"}, route="/api/v1/stores/{code}"),
    Endpoint("GET", "/api/v1/staff", "staff:read"),
    Endpoint("POST", "/api/v1/staff", "staff:write", GUIDE),
    Endpoint("GET", "/api/v1/staff/G001", "staff:read", route="/api/v1/staff/{staff_no}"),
    Endpoint("PATCH", "/api/v1/staff/G001", "staff:write", {"name": "王芳芳"}, route="/api/v1/staff/{staff_no}"),
    Endpoint("GET", "/api/v1/api-keys", "apikeys:read"),
    Endpoint("POST", "/api/v1/api-keys", "apikeys:write", {"kind": "write", "name": "till", "source": "pos"}),
    Endpoint("DELETE", "/api/v1/api-keys/{other_key}", "apikeys:write", route="/api/v1/api-keys/{key_id}"),
    Endpoint("GET", "/api/v1/audit", "audit:read"),
]
ROUTE_IDS = [e.id for e in ENDPOINTS]


@pytest.fixture
def world(db: Session) -> dict[str, Any]:
    """Merchant A with a store, a guide and keys; merchant B with a full-power key of its own."""
    a, b = make_merchant(db, "huamei"), make_merchant(db, "yuedong", "悦动运动")
    make_guide(db, a, make_store(db, a, "SH001"))
    full_a = make_admin_key(db, a)
    make_write_key(db, a, "crm")  # "other_key": the key the DELETE endpoint revokes
    other_key_id = keys.list_api_keys(db, a.id)[0][-1].id
    db.commit()
    return {"a": a, "b": b, "full_a": full_a, "full_b": make_admin_key(db, b), "other_key": other_key_id,
            "write_a": make_write_key(db, a)}


def call(client: TestClient, endpoint: Endpoint, secret: str | None, world: dict[str, Any]) -> Any:
    headers = bearer(secret) if secret else {}
    path = endpoint.path.format(other_key=world["other_key"])
    return client.request(endpoint.method, path, json=endpoint.body, headers=headers)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ROUTE_IDS)
def test_every_endpoint_refuses_missing_wrong_and_revoked_keys(client: TestClient, db: Session,
                                                               world: dict[str, Any], endpoint: Endpoint) -> None:
    assert call(client, endpoint, None, world).status_code == 401
    wrong = call(client, endpoint, "lja_not-a-real-key", world)
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    revoked_secret = make_admin_key(db, world["a"])
    revoked_id = max(k.id for k in keys.list_api_keys(db, world["a"].id)[0])
    keys.revoke_api_key(db, world["a"].id, revoked_id)
    db.commit()
    assert call(client, endpoint, revoked_secret, world).status_code == 401


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ROUTE_IDS)
def test_every_endpoint_needs_its_scope(client: TestClient, db: Session, world: dict[str, Any],
                                        endpoint: Endpoint) -> None:
    resource = endpoint.scope.split(":")[0]
    unrelated = make_admin_key(db, world["a"], "analytics:read")
    read_only = make_admin_key(db, world["a"], f"{resource}:read")
    exact = make_admin_key(db, world["a"], endpoint.scope)
    db.commit()
    refused = call(client, endpoint, unrelated, world)
    assert refused.status_code == 403
    assert refused.json()["error"]["details"]["required"] == endpoint.scope
    assert call(client, endpoint, world["write_a"], world).status_code == 403  # write keys only send events
    expected_read_only = 403 if endpoint.scope.endswith(":write") else 200
    if endpoint.scope.endswith(":read"):
        assert call(client, endpoint, read_only, world).status_code == expected_read_only
    else:
        assert call(client, endpoint, read_only, world).status_code == 403
        assert call(client, endpoint, exact, world).status_code < 300


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ROUTE_IDS)
def test_another_merchants_key_never_reaches_merchant_a(client: TestClient, db: Session, world: dict[str, Any],
                                                        endpoint: Endpoint) -> None:
    response = call(client, endpoint, world["full_b"], world)
    if "{" in endpoint.path or endpoint.path.endswith(("SH001", "G001")):
        assert response.status_code == 404, response.text  # A's store/guide/key does not exist for B
    # Whatever B did, A's data is as it was.
    a_headers = bearer(world["full_a"])
    assert client.get("/api/v1/merchant", headers=a_headers).json()["name"] == "华美生活"
    assert client.get("/api/v1/stores/SH001", headers=a_headers).json()["name"] == "上海SH001店"
    assert [s["code"] for s in client.get("/api/v1/stores", headers=a_headers).json()["items"]] == ["SH001"]
    assert client.get("/api/v1/staff/G001", headers=a_headers).json()["name"] == "王芳"
    assert client.get("/api/v1/staff", headers=a_headers).json()["total"] == 1
    assert any(k["id"] == world["other_key"] and k["revoked_at"] is None
               for k in client.get("/api/v1/api-keys", headers=a_headers).json()["items"])
    # And B sees only B.
    b_headers = bearer(world["full_b"])
    assert client.get("/api/v1/merchant", headers=b_headers).json()["slug"] == "yuedong"
    assert "SH001" not in [s["code"] for s in client.get("/api/v1/stores", headers=b_headers).json()["items"]]
