"""End to end through the orders API: orders earn points for the buyer OneID found, refunds take them
back, and a merge -> spend -> unmerge of two buyers splits orders and points back as they were."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from lianjie.loyalty import programme
from tests.commerce.test_catalogue import tree
from tests.factories import bearer, make_admin_key, make_merchant, make_store
from tests.identity.helpers import msg, send
from tests.loyalty.helpers import check_invariants


@pytest.fixture
def shop(db: Session) -> dict[str, Any]:
    merchant = make_merchant(db)
    tree(db, merchant.id)
    make_store(db, merchant)
    programme.save(db, merchant.id, {"pending_days": 0, "multipliers": {"categories": {"C2": "2"}},
                                     "expiry": {"kind": "days", "n": 365},
                                     "tiers": [{"code": "member", "name": "会员", "threshold": 0},
                                               {"code": "gold", "name": "金卡", "threshold": 500}]})
    out = {"tenant": merchant.id, "h": bearer(make_admin_key(db, merchant))}
    db.commit()
    return out


def buy(client: TestClient, shop: dict[str, Any], order_no: str, buyer: dict[str, str], sku: str, fen: int,
        at: str = "2026-11-01T10:00:00+08:00") -> dict[str, Any]:
    body = {"order_no": order_no, "ordered_at": at, "store_code": "SH001", "channel": "offline",
            "payment_method": "wechat_pay", "buyer": buyer,
            "lines": [{"sku": sku, "quantity": 1, "unit_price_fen": fen}]}
    response = client.post("/api/v1/orders", json=body, headers=shop["h"])
    assert response.status_code in (200, 201), response.text
    out: dict[str, Any] = response.json()
    return out


def points(client: TestClient, shop: dict[str, Any], profile_id: int) -> dict[str, Any]:
    out: dict[str, Any] = client.get(f"/api/v1/loyalty/accounts/{profile_id}", headers=shop["h"]).json()
    return out


def test_orders_earn_and_refunds_take_back(client: TestClient, db: Session, shop: dict[str, Any]) -> None:
    order = buy(client, shop, "SO-1", {"member_no": "M001"}, "SKU-2", 19900)  # 口红 at double points
    buyer = order["profile_id"]
    assert points(client, shop, buyer)["available"] == 398
    assert buy(client, shop, "SO-1", {"member_no": "M001"}, "SKU-2", 19900)["profile_id"] == buyer  # replay
    assert points(client, shop, buyer)["available"] == 398
    refund = client.post("/api/v1/orders/SO-1/refunds", json={"refund_no": "RF-1"}, headers=shop["h"])
    assert refund.status_code == 201, refund.text
    assert points(client, shop, buyer)["available"] == 0
    guest = buy(client, shop, "SO-2", {}, "SKU-1", 39900)
    assert guest["profile_id"] is None
    check_invariants(db, shop["tenant"])


def test_merge_spend_unmerge_through_orders(client: TestClient, db: Session, shop: dict[str, Any]) -> None:
    p1 = buy(client, shop, "SO-1", {"member_no": "M001"}, "SKU-1", 39900,
             "2026-10-01T10:00:00+08:00")["profile_id"]
    p2 = buy(client, shop, "SO-2", {"phone": "13912345678"}, "SKU-1", 20000)["profile_id"]
    assert p1 != p2
    tiers = (points(client, shop, p1)["tier"]["code"], points(client, shop, p2)["tier"]["code"])
    assert tiers == ("member", "member")

    link = msg("identify", anonymousId="kiosk-7", traits={"member_no": "M001", "phone": "13912345678"})
    send(db, shop["tenant"], link)
    db.commit()
    merged = points(client, shop, p2)
    assert (merged["profile_id"], merged["available"], merged["tier"]["code"]) == (p1, 599, "gold")
    orders = client.get("/api/v1/orders", params={"profile_id": p2}, headers=shop["h"]).json()
    assert {o["order_no"] for o in orders["items"]} == {"SO-1", "SO-2"}
    spent = client.post(f"/api/v1/loyalty/accounts/{p2}/spend", json={"idempotency_key": "till-1", "points": 450},
                        headers=shop["h"])
    assert spent.status_code == 201, spent.text  # SO-1's lot expires first: 399 from it, 51 from SO-2's

    merge_id = client.get("/api/v1/identity/merges", headers=shop["h"]).json()["items"][0]["id"]
    assert client.post(f"/api/v1/identity/merges/{merge_id}/undo", json={}, headers=shop["h"]).status_code == 200
    one, two = points(client, shop, p1), points(client, shop, p2)
    assert (one["profile_id"], one["available"], one["tier"]["code"]) == (p1, 0, "member")
    assert (two["profile_id"], two["available"], two["tier"]["code"]) == (p2, 149, "member")
    orders = client.get("/api/v1/orders", params={"profile_id": p2}, headers=shop["h"]).json()
    assert [o["order_no"] for o in orders["items"]] == ["SO-2"]
    check_invariants(db, shop["tenant"])
