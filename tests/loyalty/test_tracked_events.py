"""Tracked events earn what the programme's event rules say: once per messageId, ``Signed Up`` once
per customer, nothing for events without a rule (sent through the real tracking API)."""

from __future__ import annotations

import base64
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from lianjie.loyalty import programme
from tests.factories import bearer, make_admin_key, make_merchant, make_write_key


def _world(db: Session) -> tuple[dict[str, str], dict[str, str]]:
    shop = make_merchant(db)
    programme.save(db, shop.id, {"events": {"Signed Up": 100, "Review Submitted": 20}})
    admin, write = make_admin_key(db, shop), make_write_key(db, shop, "miniprogram")
    db.commit()
    return bearer(admin), {"Authorization": "Basic " + base64.b64encode(f"{write}:".encode()).decode()}


def _points(client: TestClient, admin: dict[str, str], user_id: str) -> Any:
    found = client.get(f"/api/v1/profiles?user_id={user_id}", headers=admin).json()["items"]
    assert len(found) == 1
    return client.get(f"/api/v1/loyalty/accounts/{found[0]['id']}", headers=admin).json()["available"]


def test_tracked_events_earn_by_the_rules_once(client: TestClient, db: Session) -> None:
    admin, track = _world(db)
    sent = [
        {"type": "track", "userId": "M1", "event": "Signed Up", "messageId": "m1"},
        {"type": "track", "userId": "M1", "event": "Review Submitted", "messageId": "m2"},
        {"type": "track", "userId": "M1", "event": "Review Submitted", "messageId": "m3"},
        {"type": "track", "userId": "M1", "event": "Product Viewed", "messageId": "m4"},  # no rule: nothing
    ]
    assert client.post("/v1/batch", json={"batch": sent}, headers=track).json()["accepted"] == 4
    assert _points(client, admin, "M1") == 100 + 20 + 20
    # The batch again (an SDK retrying), and the person signing up a second time: nothing more.
    client.post("/v1/batch", json={"batch": sent}, headers=track)
    client.post("/v1/track", json={"userId": "M1", "event": "Signed Up", "messageId": "m5"}, headers=track)
    assert _points(client, admin, "M1") == 140
    # A second device of the same customer (joined by OneID first) signing up earns nothing either.
    client.post("/v1/identify", json={"anonymousId": "phone-2", "userId": "M1"}, headers=track)
    client.post("/v1/track", json={"anonymousId": "phone-2", "event": "Signed Up", "messageId": "m6"},
                headers=track)
    assert _points(client, admin, "M1") == 140
    # Another customer earns their own.
    client.post("/v1/track", json={"userId": "M2", "event": "Signed Up"}, headers=track)
    assert _points(client, admin, "M2") == 100


def test_order_events_never_earn_twice(client: TestClient, db: Session) -> None:
    """An "Order Completed" rule would pay the order twice: orders earn through the order itself."""
    admin, track = _world(db)
    tenant = client.get("/api/v1/merchant", headers=admin).json()["id"]
    programme.save(db, tenant, {"events": {"Order Completed": 500, "Signed Up": 100}})
    db.commit()
    client.post("/v1/track", json={"userId": "M1", "event": "Order Completed"}, headers=track)
    assert _points(client, admin, "M1") == 0
