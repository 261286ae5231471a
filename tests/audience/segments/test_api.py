"""Segment API on SQLite and PostgreSQL with a DuckDB (and later Spark) warehouse: keys, scopes and
merchant isolation; idempotent creates and snapshots; 400 with the JSON path of a bad rule; the
export's formats and its consent rule."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from lianjie.identity import privacy
from lianjie.identity.schemas import Channel, ConsentIn, Purpose
from tests.endpoints import Endpoint, check_keys_and_scopes
from tests.factories import bearer, make_admin_key, make_merchant, make_write_key
from tests.identity.helpers import customers, msg, send
from tests.warehouse_backends import fill

S = "/api/v1/segments"
VIP = {"tag": "vip"}
ENDPOINTS = [
    Endpoint("POST", S, "audiences:write", {"name": "VIP", "rule": VIP}),
    Endpoint("GET", S, "audiences:read"),
    Endpoint("POST", S + "/preview", "audiences:read", {"rule": VIP}),
    Endpoint("GET", S + "/{segment}", "audiences:read", route=S + "/{segment_id}"),
    Endpoint("PATCH", S + "/{segment}", "audiences:write", {"description": "d"}, route=S + "/{segment_id}"),
    Endpoint("DELETE", S + "/{segment}", "audiences:write", route=S + "/{segment_id}"),
    Endpoint("POST", S + "/{segment}/preview", "audiences:read", {"sample": 2}, route=S + "/{segment_id}/preview"),
    Endpoint("POST", S + "/{segment}/snapshots", "audiences:write", {}, route=S + "/{segment_id}/snapshots"),
    Endpoint("GET", S + "/{segment}/snapshots", "audiences:read", route=S + "/{segment_id}/snapshots"),
    Endpoint("GET", S + "/{segment}/export.csv", "audiences:write", route=S + "/{segment_id}/export.csv"),
]
IDS = [e.id for e in ENDPOINTS]
PHONE_MD5 = "535381ec9d5ab7a390db0a30860600f2"  # md5sum of the text 13912345678, outside Python
PHONE_SHA256 = "ba6c167e885ea4be8252fb01c61fc55439089f389ee1b0592fc8c4f417196403"
OPENID_MD5 = "ff5de1b60e0da620ad32aa654a86999c"


def _customer(db: Session, tenant_id: int, user_id: str, **traits: str) -> int:
    send(db, tenant_id, msg("identify", userId=user_id, traits=traits))
    return customers(db, tenant_id, user_id=user_id).pop()


def _consent(db: Session, tenant_id: int, profile_id: int, granted: bool) -> None:
    privacy.record_consent(db, tenant_id, profile_id, ConsentIn(purpose=Purpose.MARKETING, channel=Channel.ALL,
                                                                granted=granted, source="test"))


@pytest.fixture
def world(client: TestClient, db: Session, warehouse: Any) -> dict[str, Any]:
    """Merchant a: p1 (consenting, a mainland phone and an openid), p2 (no consent), p3 (consenting, a
    US phone), all tagged vip, and p4 (no tag); merchant b: one vip."""
    a, b = make_merchant(db, "huamei"), make_merchant(db, "yuedong", "悦动运动")
    p1 = _customer(db, a.id, "U1", phone="13912345678", wechat_openid="oOPEN1", wechat_appid="wxAPP")
    p2 = _customer(db, a.id, "U2", phone="13800000002")
    p3 = _customer(db, a.id, "U3", phone="+12025550123")
    p4 = _customer(db, a.id, "U4")
    other = _customer(db, b.id, "U1")
    _consent(db, a.id, p1, True)
    _consent(db, a.id, p3, True)
    _consent(db, a.id, p2, True)
    _consent(db, a.id, p2, False)  # withdrawn: the latest decision counts
    fill(warehouse, {
        "identity_map": [{"tenant_id": a.id, "profile_id": p, "customer_id": p, "erased": False}
                         for p in (p1, p2, p3, p4)]
        + [{"tenant_id": b.id, "profile_id": other, "customer_id": other, "erased": False}],
        "profiles": [{"tenant_id": a.id, "profile_id": p1, "traits": '{"city": "杭州"}'}],
        "customer_traits": [{"tenant_id": a.id, "customer_id": p1, "rfm_group": "champions", "frequency": 3,
                             "monetary_fen": 9900}],
        "profile_tags": [{"tenant_id": a.id, "profile_id": p, "tag": "vip"} for p in (p1, p2, p3)]
        + [{"tenant_id": b.id, "profile_id": other, "tag": "vip"}],
    })
    client.app.state.warehouse = warehouse  # type: ignore[attr-defined]
    full_a = make_admin_key(db, a)
    db.commit()
    created = client.post(S, json={"name": "VIP", "rule": VIP}, headers=bearer(full_a))
    assert created.status_code == 201, created.text
    return {"a": a, "b": b, "full_a": full_a, "full_b": make_admin_key(db, b), "write_a": make_write_key(db, a),
            "segment": created.json()["id"], "p": [p1, p2, p3, p4]}


def call(client: TestClient, endpoint: Endpoint, secret: str | None, world: dict[str, Any]) -> Any:
    if endpoint.path.endswith("export.csv") and secret:  # needs a snapshot first
        client.post(f"{S}/{world['segment']}/snapshots", json={}, headers=bearer(world["full_a"]))
    path = endpoint.path.format(segment=world["segment"])
    return client.request(endpoint.method, path, json=endpoint.body, headers=bearer(secret) if secret else {})


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_keys_scopes_and_merchant_isolation(client: TestClient, db: Session, world: dict[str, Any],
                                            endpoint: Endpoint) -> None:
    """One test per endpoint for both checks: each warehouse fill costs about a second."""
    response = call(client, endpoint, world["full_b"], world)
    if "{" in endpoint.path:
        assert response.status_code == 404, response.text
    elif endpoint.path.endswith("preview"):
        assert response.json()["count"] == 1  # merchant b's own vip only
    got = client.get(f"{S}/{world['segment']}", headers=bearer(world["full_a"])).json()
    assert (got["name"], got["archived_at"]) == ("VIP", None)
    check_keys_and_scopes(db, world["a"], endpoint, lambda secret: call(client, endpoint, secret, world),
                          write_key=world["write_a"], full_key=world["full_a"], read_scope="audiences:read",
                          unrelated_scope="orders:write")


def test_create_is_idempotent_by_name_and_a_bad_rule_is_400_with_its_path(client: TestClient,
                                                                          world: dict[str, Any]) -> None:
    h = bearer(world["full_a"])
    again = client.post(S, json={"name": "VIP", "rule": VIP}, headers=h)
    assert (again.status_code, again.json()["id"]) == (200, world["segment"])
    other = client.post(S, json={"name": "VIP", "rule": {"tag": "svip"}}, headers=h)
    assert (other.status_code, other.json()["error"]["details"]["differing"]) == (409, ["rule"])
    bad = client.post(S, json={"name": "Bad", "rule": {"all": [VIP, {"any": [{"trait": "tier", "op": "≈"}]}]}},
                      headers=h)
    assert (bad.status_code, bad.json()["error"]["field"]) == (400, "rule.all[1].any[0].op")
    bad_preview = client.post(f"{S}/preview", json={"rule": {"did": "X", "at_least": 2, "at_most": 1}}, headers=h)
    assert (bad_preview.status_code, bad_preview.json()["error"]["field"]) == (400, "rule.at_most")
    listed = client.get(S, headers=h).json()
    assert (listed["total"], [s["name"] for s in listed["items"]]) == (1, ["VIP"])


def test_update_archive_and_reuse_the_name(client: TestClient, world: dict[str, Any]) -> None:
    h, seg = bearer(world["full_a"]), world["segment"]
    changed = client.patch(f"{S}/{seg}", json={"rule": {"tag": ["vip", "svip"]}}, headers=h).json()
    assert changed["rule_version"] == 2
    same = client.patch(f"{S}/{seg}", json={"rule": {"tag": ["vip", "svip"]}, "description": "x"}, headers=h).json()
    assert (same["rule_version"], same["description"]) == (2, "x")
    archived = client.delete(f"{S}/{seg}", headers=h).json()
    assert archived["archived_at"] is not None
    assert client.delete(f"{S}/{seg}", headers=h).json()["archived_at"] == archived["archived_at"]
    assert client.patch(f"{S}/{seg}", json={"description": "y"}, headers=h).status_code == 409
    fresh = client.post(S, json={"name": "VIP", "rule": VIP}, headers=h)
    assert (fresh.status_code, fresh.json()["id"] != seg) == (201, True)
    assert client.get(S, params={"archived": True}, headers=h).json()["total"] == 2


def test_preview_snapshots_history_and_export(client: TestClient, world: dict[str, Any]) -> None:
    h, seg = bearer(world["full_a"]), world["segment"]
    p1, p2, p3, _ = world["p"]
    preview = client.post(f"{S}/preview", json={"rule": {"all": [VIP, {"not": {"trait": "traits.city", "op": "=",
                                                                              "value": "杭州"}}]}}, headers=h).json()
    assert (preview["count"], [s["customer_id"] for s in preview["sample"]]) == (2, sorted([p2, p3]))
    saved = client.post(f"{S}/{seg}/preview", json={"sample": 1}, headers=h).json()
    assert (saved["count"], len(saved["sample"])) == (3, 1)
    first = saved["sample"][0]
    assert first["customer_id"] == min(p1, p2, p3)
    if first["customer_id"] == p1:
        assert (first["traits"], first["rfm_group"], first["monetary_fen"]) == ({"city": "杭州"}, "champions", 9900)

    taken = client.post(f"{S}/{seg}/snapshots", json={"idempotency_key": "daily-1"}, headers=h)
    assert (taken.status_code, taken.json()["size"], taken.json()["rule_version"]) == (201, 3, 1)
    again = client.post(f"{S}/{seg}/snapshots", json={"idempotency_key": "daily-1"}, headers=h)
    assert (again.status_code, again.json()["id"], again.json()["replayed"]) == (200, taken.json()["id"], True)
    client.patch(f"{S}/{seg}", json={"rule": {"all": [VIP, {"trait": "rfm_group", "op": "is_set"}]}}, headers=h)
    second = client.post(f"{S}/{seg}/snapshots", headers=h).json()
    assert (second["size"], second["rule_version"]) == (1, 2)
    history = client.get(f"{S}/{seg}/snapshots", headers=h).json()
    assert [(s["size"], s["rule_version"]) for s in history] == [(3, 1), (1, 2)]

    def export(**params: Any) -> list[str]:
        response = client.get(f"{S}/{seg}/export.csv", params={"snapshot": taken.json()["id"], **params}, headers=h)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        return response.text.splitlines()

    assert export() == ["customer_id", *map(str, sorted([p1, p2, p3]))]
    assert export(id_type="phone") == ["phone", "13912345678"]  # p2 withdrew consent, p3's is not mainland
    assert export(id_type="phone", hash="md5") == ["phone_md5", PHONE_MD5]
    assert export(id_type="phone", hash="sha256", header=False) == [PHONE_SHA256]
    assert export(id_type="openid") == ["openid", "oOPEN1"]
    assert export(id_type="openid", hash="md5", appid="wxAPP") == ["openid_md5", OPENID_MD5]
    assert export(id_type="openid", appid="wxOTHER") == ["openid"]
    latest = client.get(f"{S}/{seg}/export.csv", headers=h).text.splitlines()
    assert latest == ["customer_id", str(p1)]  # the latest snapshot by default
    missing = client.get(f"{S}/{seg}/export.csv", params={"snapshot": 2**62}, headers=h)
    assert missing.status_code == 404


def test_a_warehouse_not_synced_yet_is_a_409_not_a_500(client: TestClient, db: Session, warehouse: Any) -> None:
    """A new install's console may ask before the first sync has created the warehouse's tables."""
    shop = make_merchant(db, "xinkai")
    client.app.state.warehouse = warehouse  # type: ignore[attr-defined]  # empty: no table at all
    response = client.post(f"{S}/preview", json={"rule": VIP}, headers=bearer(make_admin_key(db, shop)))
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "warehouse_not_ready"
