"""What an integrator sees using the tenants API: replays, conflicts, validation, paging, keys."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.tenants.models import ApiKey
from tests.factories import bearer, make_admin_key, make_merchant

STORE = {"code": "CD001", "name": "成都太古里店", "city": "成都", "province": "四川", "type": "flagship"}


@pytest.fixture
def admin(db: Session) -> dict[str, str]:
    merchant = make_merchant(db)
    secret = make_admin_key(db, merchant)
    db.commit()
    return bearer(secret)


def test_store_create_then_replay_then_conflict(client: TestClient, admin: dict[str, str]) -> None:
    first = client.post("/api/v1/stores", json=STORE, headers=admin)
    assert first.status_code == 201
    assert first.json()["status"] == "open"
    replay = client.post("/api/v1/stores", json=STORE, headers=admin)
    assert replay.status_code == 200
    assert replay.json()["created_at"] == first.json()["created_at"]
    conflict = client.post("/api/v1/stores", json=STORE | {"city": "重庆"}, headers=admin)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["details"]["city"] == {"stored": "成都", "sent": "重庆"}
    assert client.get("/api/v1/stores/CD001", headers=admin).json()["city"] == "成都"


@pytest.mark.parametrize(("body", "field"), [
    (STORE | {"type": "warehouse"}, "body.type"),
    (STORE | {"code": "bad code!"}, "body.code"),
    ({k: v for k, v in STORE.items() if k != "city"}, "body.city"),
    (STORE | {"opened_on": "2026-13-40"}, "body.opened_on"),
    (STORE | {"colour": "red"}, "body.colour"),
])
def test_bad_store_input_says_what_and_where(client: TestClient, admin: dict[str, str], body: dict[str, str],
                                             field: str) -> None:
    response = client.post("/api/v1/stores", json=body, headers=admin)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
    assert client.get("/api/v1/stores", headers=admin).json()["total"] == 0


def test_malformed_json_is_a_4xx(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post("/api/v1/stores", content=b'{"code": ', headers=admin | {"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"


def test_store_list_filters_and_pages(client: TestClient, admin: dict[str, str]) -> None:
    for i, city in enumerate(["上海", "上海", "北京", "杭州", "上海"]):
        client.post("/api/v1/stores", json=STORE | {"code": f"S{i}", "city": city, "type": "mall"}, headers=admin)
    shanghai = client.get("/api/v1/stores", params={"city": "上海", "limit": 2}, headers=admin).json()
    assert shanghai["total"] == 3
    assert [s["code"] for s in shanghai["items"]] == ["S0", "S1"]
    rest = client.get("/api/v1/stores", params={"city": "上海", "limit": 2, "offset": 2}, headers=admin).json()
    assert [s["code"] for s in rest["items"]] == ["S4"]
    assert client.get("/api/v1/stores", params={"limit": 0}, headers=admin).status_code == 422


def test_close_a_store_and_move_its_guide(client: TestClient, admin: dict[str, str]) -> None:
    client.post("/api/v1/stores", json=STORE, headers=admin)
    client.post("/api/v1/stores", json=STORE | {"code": "CD002"}, headers=admin)
    guide = {"staff_no": "G7", "name": "周杰", "role": "guide", "store_code": "CD001", "phone": "13700001111"}
    created = client.post("/api/v1/staff", json=guide, headers=admin)
    assert created.status_code == 201
    assert created.json()["phone"] == "13700001111"
    assert client.patch("/api/v1/stores/CD001", json={"status": "closed"}, headers=admin).json()["status"] == "closed"
    moved = client.patch("/api/v1/staff/G7", json={"store_code": "CD002"}, headers=admin).json()
    assert moved["store_code"] == "CD002"
    listed = client.get("/api/v1/staff", params={"store_code": "CD002"}, headers=admin).json()
    assert [s["staff_no"] for s in listed["items"]] == ["G7"]
    missing_store = client.post("/api/v1/staff", json=guide | {"staff_no": "G8", "store_code": "NOPE"}, headers=admin)
    assert missing_store.status_code == 404
    assert missing_store.json()["error"]["field"] == "store_code"
    no_store = client.post("/api/v1/staff", json={"staff_no": "G9", "name": "x", "role": "guide"}, headers=admin)
    assert no_store.status_code == 422
    assert no_store.json()["error"]["code"] == "store_required"


def test_phone_is_hidden_from_read_only_keys(client: TestClient, db: Session, admin: dict[str, str]) -> None:
    client.post("/api/v1/stores", json=STORE, headers=admin)
    client.post("/api/v1/staff", json={"staff_no": "G1", "name": "林", "role": "guide", "store_code": "CD001",
                                       "phone": "13800000001"}, headers=admin)
    reader = client.post("/api/v1/api-keys", json={"kind": "admin", "name": "bi", "scopes": ["staff:read"]},
                         headers=admin).json()["key"]
    assert client.get("/api/v1/staff/G1", headers=bearer(reader)).json()["phone"] is None
    assert client.get("/api/v1/staff/G1", headers=admin).json()["phone"] == "13800000001"


def test_api_key_lifecycle(client: TestClient, db: Session, admin: dict[str, str]) -> None:
    created = client.post("/api/v1/api-keys", json={"kind": "admin", "name": "crm sync",
                                                    "scopes": ["stores:read"]}, headers=admin)
    assert created.status_code == 201
    body = created.json()
    secret = body["key"]
    assert secret.startswith("lja_")
    assert body["prefix"] == secret[:12]
    assert db.scalar(select(ApiKey).where(ApiKey.secret_hash == secret)) is None  # only a hash is kept
    listed = client.get("/api/v1/api-keys", headers=admin).json()["items"]
    assert all("key" not in k for k in listed)
    assert body["id"] in [k["id"] for k in listed]
    assert client.get("/api/v1/stores", headers=bearer(secret)).status_code == 200
    used = next(k for k in client.get("/api/v1/api-keys", headers=admin).json()["items"] if k["id"] == body["id"])
    assert used["last_used_at"] is not None
    revoked = client.delete(f"/api/v1/api-keys/{body['id']}", headers=admin)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"]
    again = client.delete(f"/api/v1/api-keys/{body['id']}", headers=admin)
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert client.get("/api/v1/stores", headers=bearer(secret)).status_code == 401
    assert body["id"] not in [k["id"] for k in client.get("/api/v1/api-keys", headers=admin).json()["items"]]


def test_a_key_cannot_mint_a_stronger_key(client: TestClient, db: Session, admin: dict[str, str]) -> None:
    keymaker = client.post("/api/v1/api-keys", json={"kind": "admin", "name": "k",
                                                     "scopes": ["apikeys:write", "stores:read"]},
                           headers=admin).json()["key"]
    for scopes in (["*"], ["stores:write"], ["loyalty:read"]):
        response = client.post("/api/v1/api-keys", json={"kind": "admin", "name": "x", "scopes": scopes},
                               headers=bearer(keymaker))
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "scope_escalation"
    ok = client.post("/api/v1/api-keys", json={"kind": "admin", "name": "x", "scopes": ["stores:read"]},
                     headers=bearer(keymaker))
    assert ok.status_code == 201


@pytest.mark.parametrize(("body", "code"), [
    ({"kind": "admin", "name": "x", "scopes": ["stores:delete"]}, "unknown_scope"),
    ({"kind": "admin", "name": "x", "scopes": []}, "invalid"),
    ({"kind": "write", "name": "x"}, "invalid"),
    ({"kind": "write", "name": "x", "source": "pos", "scopes": ["stores:read"]}, "invalid"),
    ({"kind": "root", "name": "x"}, "invalid"),
])
def test_bad_key_requests(client: TestClient, admin: dict[str, str], body: dict[str, object], code: str) -> None:
    response = client.post("/api/v1/api-keys", json=body, headers=admin)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code


def test_merchant_settings(client: TestClient, admin: dict[str, str]) -> None:
    assert client.get("/api/v1/merchant", headers=admin).json()["timezone"] == "Asia/Shanghai"
    bad = client.patch("/api/v1/merchant", json={"timezone": "Asia/Beijing"}, headers=admin)
    assert bad.status_code == 422
    assert "time zone" in bad.json()["error"]["message"]
    assert client.patch("/api/v1/merchant", json={"timezone": "Asia/Hong_Kong"}, headers=admin).status_code == 200
    assert client.get("/api/v1/merchant", headers=admin).json()["timezone"] == "Asia/Hong_Kong"


def test_a_key_revokes_only_keys_whose_scopes_it_holds(client: TestClient, db: Session,
                                                       admin: dict[str, str]) -> None:
    def make(scopes: list[str]) -> dict[str, object]:
        made: dict[str, object] = client.post("/api/v1/api-keys", json={"kind": "admin", "name": "k", "scopes": scopes},
                                              headers=admin).json()
        return made

    keymaster = make(["apikeys:write", "stores:read"])
    stronger, weaker, full = make(["stores:write"]), make(["stores:read"]), make(["*"])
    as_keymaster = bearer(str(keymaster["key"]))
    for target in (stronger, full):
        refused = client.delete(f"/api/v1/api-keys/{target['id']}", headers=as_keymaster)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "scope_escalation"
        assert db.get(ApiKey, target["id"]).revoked_at is None  # type: ignore[union-attr]
    assert client.delete(f"/api/v1/api-keys/{weaker['id']}", headers=as_keymaster).status_code == 200
    # Revoking itself is within its own scopes.
    assert client.delete(f"/api/v1/api-keys/{keymaster['id']}", headers=as_keymaster).status_code == 200


def test_the_merchants_last_full_key_cannot_be_revoked(client: TestClient, db: Session,
                                                       admin: dict[str, str]) -> None:
    own_id = client.get("/api/v1/api-keys", headers=admin).json()["items"][0]["id"]
    refused = client.delete(f"/api/v1/api-keys/{own_id}", headers=admin)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "last_full_key"
    assert client.get("/api/v1/stores", headers=admin).status_code == 200
    second = client.post("/api/v1/api-keys", json={"kind": "admin", "name": "new owner key", "scopes": ["*"]},
                         headers=admin).json()
    assert client.delete(f"/api/v1/api-keys/{own_id}", headers=admin).status_code == 200
    refused = client.delete(f"/api/v1/api-keys/{second['id']}", headers=bearer(second["key"]))
    assert refused.status_code == 409
    assert client.get("/api/v1/stores", headers=bearer(second["key"])).status_code == 200


def test_api_keys_are_paged(client: TestClient, admin: dict[str, str]) -> None:
    for n in range(4):
        client.post("/api/v1/api-keys", json={"kind": "write", "name": f"till {n}", "source": f"pos{n}"},
                    headers=admin)
    page = client.get("/api/v1/api-keys?limit=2&offset=2", headers=admin).json()
    assert page["total"] == 5
    assert page["limit"] == 2
    assert page["offset"] == 2
    assert [k["name"] for k in page["items"]] == ["till 1", "till 2"]


def test_key_writes_are_in_the_audit_log(client: TestClient, db: Session, admin: dict[str, str]) -> None:
    own_id = client.get("/api/v1/api-keys", headers=admin).json()["items"][0]["id"]
    made = client.post("/api/v1/api-keys", json={"kind": "admin", "name": "bi", "scopes": ["analytics:read"]},
                       headers=admin).json()
    client.delete(f"/api/v1/api-keys/{made['id']}", headers=admin)
    log = client.get("/api/v1/audit?action=apikey.", headers=admin)
    assert log.status_code == 200, log.text
    assert log.json()["items"][-1]["actor"] == "system"  # the fixture's own key, made by a service call
    entries = [e for e in log.json()["items"] if e["target"] == f"api_key:{made['id']}"]
    assert [(e["action"], e["target"], e["actor"]) for e in entries] == [
        ("apikey.revoke", f"api_key:{made['id']}", f"key:{own_id}"),
        ("apikey.create", f"api_key:{made['id']}", f"key:{own_id}")]
    revoke, create = entries
    assert create["before"] is None
    assert create["after"]["scopes"] == ["analytics:read"]
    assert revoke["before"]["revoked_at"] is None
    assert revoke["after"]["revoked_at"] is not None
    assert revoke["request_id"]
    assert made["key"] not in log.text  # the secret is never logged
    # A key without audit:read cannot read it.
    reader = client.post("/api/v1/api-keys", json={"kind": "admin", "name": "r", "scopes": ["stores:read"]},
                         headers=admin).json()["key"]
    assert client.get("/api/v1/audit", headers=bearer(reader)).status_code == 403


def test_a_staff_name_longer_than_its_column_is_a_422_not_a_500(client: TestClient, admin: dict[str, str]) -> None:
    client.post("/api/v1/stores", json=STORE, headers=admin)
    guide = {"staff_no": "G1", "role": "guide", "store_code": "CD001"}
    too_long = client.post("/api/v1/staff", json=guide | {"name": "林" * 101}, headers=admin)
    assert too_long.status_code == 422, too_long.text
    assert too_long.json()["error"]["field"] == "body.name"
    assert client.post("/api/v1/staff", json=guide | {"name": "林" * 100}, headers=admin).status_code == 201
    renamed = client.patch("/api/v1/staff/G1", json={"name": "林" * 101}, headers=admin)
    assert renamed.status_code == 422
    assert client.get("/api/v1/staff/G1", headers=admin).json()["name"] == "林" * 100


def test_store_and_staff_changes_are_audited(client: TestClient, admin: dict[str, str]) -> None:
    client.post("/api/v1/stores", json=STORE, headers=admin)
    client.patch("/api/v1/stores/CD001", json={"name": "成都旗舰店"}, headers=admin)
    client.post("/api/v1/staff", json={"staff_no": "G1", "name": "林", "role": "guide", "store_code": "CD001",
                                       "phone": "13800000001"}, headers=admin)
    client.patch("/api/v1/staff/G1", json={"status": "left"}, headers=admin)
    entries = client.get("/api/v1/audit", headers=admin).json()["items"]
    by_action = {e["action"]: e for e in entries}
    assert by_action["store.update"]["before"] == {"name": "成都太古里店"}
    assert by_action["store.update"]["after"] == {"name": "成都旗舰店"}
    assert by_action["staff.update"]["before"]["status"] == "active"
    assert by_action["staff.update"]["after"] == {"status": "left"}
    assert "13800000001" not in str(entries)  # a staff phone is PII: never in the log
