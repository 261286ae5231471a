"""The Segment-compatible tracking API as an SDK sees it: auth, gzip, limits, partial batches, retries."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lianjie.identity.models import Event
from lianjie.tenants.models import Merchant
from tests.factories import make_admin_key, make_merchant, make_write_key


@pytest.fixture
def shop(db: Session) -> tuple[Merchant, str]:
    merchant = make_merchant(db)
    key = make_write_key(db, merchant, "web")
    db.commit()
    return merchant, key


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def stored(db: Session, tenant_id: int) -> int:
    return db.scalar(select(func.count()).select_from(Event).where(Event.tenant_id == tenant_id)) or 0


def test_single_calls_with_basic_auth_or_write_key_in_body(client: TestClient, db: Session,
                                                           shop: tuple[Merchant, str]) -> None:
    merchant, key = shop
    ok = client.post("/v1/track", json={"userId": "U1", "event": "Signed Up", "messageId": "a"}, headers=basic(key))
    assert ok.status_code == 200
    assert ok.json() == {"success": True}
    in_body = client.post("/v1/identify", json={"writeKey": key, "anonymousId": "d1", "traits": {"city": "上海"}})
    assert in_body.status_code == 200
    for kind, extra in [("page", {"name": "首页"}), ("screen", {"name": "我的"}), ("group", {"groupId": "g1"}),
                        ("alias", {"previousId": "d1"})]:
        assert client.post(f"/v1/{kind}", json={"userId": "U1", **extra}, headers=basic(key)).status_code == 200
    assert stored(db, merchant.id) == 6
    source = db.scalar(select(Event.source).where(Event.message_id == "a"))
    assert source == "web"


def test_wrong_revoked_or_admin_keys_get_401(client: TestClient, db: Session, shop: tuple[Merchant, str]) -> None:
    merchant, _ = shop
    body = {"userId": "U1", "event": "x"}
    assert client.post("/v1/track", json=body).status_code == 401
    assert client.post("/v1/track", json=body, headers=basic("ljw_wrong")).status_code == 401
    assert client.post("/v1/track", json=body, headers=basic(make_admin_key(db, merchant))).status_code == 401
    assert client.post("/v1/track", json=body, headers={"Authorization": "Basic !!!"}).status_code == 401
    assert stored(db, merchant.id) == 0


def test_gzip_batches_as_the_official_clients_send_them(client: TestClient, db: Session,
                                                        shop: tuple[Merchant, str]) -> None:
    merchant, key = shop
    batch = {"batch": [{"type": "track", "userId": "U1", "event": f"e{i}", "messageId": f"g{i}"} for i in range(50)],
             "sentAt": dt.datetime.now(dt.UTC).isoformat()}
    response = client.post("/v1/batch", content=gzip.compress(json.dumps(batch).encode()),
                           headers=basic(key) | {"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json()["accepted"] == 50
    assert stored(db, merchant.id) == 50
    broken = client.post("/v1/batch", content=b"not gzip", headers=basic(key) | {"Content-Encoding": "gzip"})
    assert broken.status_code == 400


def test_bad_messages_are_named_and_the_good_ones_kept(client: TestClient, db: Session,
                                                       shop: tuple[Merchant, str]) -> None:
    merchant, key = shop
    batch = [
        {"type": "track", "userId": "U1", "event": "ok", "messageId": "good-1"},
        {"type": "track", "event": "no id"},
        {"type": "track", "userId": "U1"},
        {"type": "launch", "userId": "U1"},
        {"type": "identify", "userId": "U1", "traits": ["not", "an", "object"]},
        {"type": "track", "userId": "U1", "event": "bad time", "timestamp": "yesterday"},
        "not an object",
        {"type": "page", "anonymousId": "d", "messageId": "good-2"},
    ]
    response = client.post("/v1/batch", json={"batch": batch}, headers=basic(key))
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 2
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [
        (1, "userId"), (2, "event"), (3, "type"), (4, "traits"), (5, "timestamp"), (6, "")]
    assert stored(db, merchant.id) == 2


def test_all_bad_is_400_with_index_and_field(client: TestClient, db: Session, shop: tuple[Merchant, str]) -> None:
    merchant, key = shop
    response = client.post("/v1/batch", json={"batch": [{"type": "track", "userId": None,
                                                          "event": "x"}]}, headers=basic(key))
    assert response.status_code == 400
    assert response.json()["error"]["rejected"] == [
        {"index": 0, "field": "userId", "message": "a message needs userId or anonymousId"}]
    single = client.post("/v1/track", json={"userId": "U1"}, headers=basic(key))
    assert single.status_code == 400
    assert single.json()["error"]["field"] == "event"
    for raw in (b"{", b"[1, 2]", b'{"batch": {}}'):
        bad = client.post("/v1/batch", content=raw, headers=basic(key) | {"Content-Type": "application/json"})
        assert bad.status_code == 400, raw
    assert stored(db, merchant.id) == 0


def test_size_limits_answer_413(client: TestClient, db: Session, shop: tuple[Merchant, str]) -> None:
    merchant, key = shop
    big = {"userId": "U1", "event": "big", "properties": {"blob": "x" * 33_000}}
    assert client.post("/v1/track", json=big, headers=basic(key)).status_code == 413
    too_many = {"batch": [{"type": "track", "userId": "U", "event": "e"}] * 2501}
    assert client.post("/v1/batch", json=too_many, headers=basic(key)).status_code == 413
    too_big = {"batch": [{"type": "track", "userId": "U", "event": "e", "properties": {"p": "y" * 30_000}}] * 20}
    assert client.post("/v1/batch", json=too_big, headers=basic(key)).status_code == 413
    bomb = gzip.compress(b'{"batch": [' + b" " * 2_000_000 + b"]}")
    assert client.post("/v1/batch", content=bomb, headers=basic(key) | {"Content-Encoding": "gzip"}).status_code == 413
    one_big_in_batch = {"batch": [big | {"type": "track"}, {"type": "track", "userId": "U", "event": "small"}]}
    response = client.post("/v1/batch", json=one_big_in_batch, headers=basic(key))
    assert response.json()["accepted"] == 1
    assert "32 KB" in response.json()["rejected"][0]["message"]
    assert stored(db, merchant.id) == 1


def test_retried_batches_store_nothing_twice(client: TestClient, db: Session, shop: tuple[Merchant, str]) -> None:
    merchant, key = shop
    batch = {"batch": [{"type": "track", "anonymousId": "d", "event": "e", "messageId": f"r{i}"} for i in range(10)]}
    first = client.post("/v1/batch", json=batch, headers=basic(key)).json()
    again = client.post("/v1/batch", json=batch, headers=basic(key)).json()
    assert (first["accepted"], again["accepted"], again["duplicates"]) == (10, 0, 10)
    assert stored(db, merchant.id) == 10


def test_clock_skew_is_corrected_from_sent_at(client: TestClient, db: Session, shop: tuple[Merchant, str]) -> None:
    _, key = shop
    fast_clock = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)  # the phone is an hour ahead
    happened = fast_clock - dt.timedelta(minutes=5)
    message: dict[str, Any] = {"type": "track", "userId": "U1", "event": "e", "messageId": "skew",
                               "timestamp": happened.isoformat()}
    client.post("/v1/batch", json={"batch": [message], "sentAt": fast_clock.isoformat()}, headers=basic(key))
    event = db.scalar(select(Event).where(Event.message_id == "skew"))
    assert event is not None
    assert abs(event.received_at - dt.timedelta(minutes=5) - event.timestamp) < dt.timedelta(seconds=1)
    assert event.original_timestamp == happened.replace(microsecond=happened.microsecond)
    assert event.payload["event"] == "e"


def test_personal_fields_are_not_stored_in_plain(client: TestClient, db: Session, shop: tuple[Merchant, str]) -> None:
    _, key = shop
    client.post("/v1/identify", json={"userId": "U1", "messageId": "pii", "context": {"ip": "10.1.2.3"},
                                      "traits": {"name": "王小明", "phone": "13912345678", "city": "北京"}},
                headers=basic(key))
    event = db.scalar(select(Event).where(Event.message_id == "pii"))
    assert event is not None
    assert event.payload["traits"] == {"city": "北京"}
    assert "ip" not in event.payload["context"]
    assert event.pii_encrypted is not None
    assert "王小明".encode() not in event.pii_encrypted


def test_a_nul_character_rejects_only_its_own_message(client: TestClient, db: Session,
                                                      shop: tuple[Merchant, str]) -> None:
    """PostgreSQL stores no NUL in text: such a message is named in ``rejected``, the others are stored."""
    merchant, key = shop
    batch = [
        {"type": "track", "userId": "U1", "event": "ok", "messageId": "good-1"},
        {"type": "track", "userId": "U1", "event": "Product Viewed", "properties": {"name": "连衣裙\u0000"}},
        {"type": "identify", "userId": "U\u00002", "traits": {"city": "上海"}},
        {"type": "track", "userId": "U1", "event": "e", "properties": {"bad\u0000key": 1}},
        {"type": "identify", "userId": "U3", "traits": {"phone": "139\u000012345678"}},
        {"type": "track", "userId": "U1", "event": "a backslash is fine", "properties": {"path": "C:\\u0000"},
         "messageId": "good-2"},
    ]
    response = client.post("/v1/batch", json={"batch": batch}, headers=basic(key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 2
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [
        (1, "properties.name"), (2, "userId"), (3, "properties.bad\u0000key"), (4, "traits.phone")]
    assert "NUL" in body["rejected"][0]["message"]
    assert stored(db, merchant.id) == 2
    single = client.post("/v1/track", json={"userId": "U1", "event": "x\u0000"}, headers=basic(key))
    assert single.status_code == 400
    assert single.json()["error"]["field"] == "event"
