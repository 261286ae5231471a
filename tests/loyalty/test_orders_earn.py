"""End to end through the orders API: orders earn points for the buyer OneID found, refunds take them
back, and a merge -> spend -> unmerge of two buyers splits orders and points back as they were."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from lianjie.commerce import catalogue
from lianjie.commerce.schemas import ProductIn
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


def refund_lines(client: TestClient, shop: dict[str, Any], refund_no: str, *lines: tuple[int, int]) -> None:
    body = {"refund_no": refund_no, "lines": [{"line_no": n, "quantity": q} for n, q in lines]}
    response = client.post("/api/v1/orders/SO-9/refunds", json=body, headers=shop["h"])
    assert response.status_code == 201, response.text


def three_lines(client: TestClient, db: Session, shop: dict[str, Any], rules: dict[str, Any]) -> int:
    """SO-9: 3 x SKU-1 at ¥100 (1x), 1 x SKU-2 at ¥50 (category C2, 3x), 2 x SKU-3 at ¥20 (category C11,
    excluded); returns the buyer."""
    catalogue.upsert_product(db, shop["tenant"], ProductIn(sku="SKU-3", name="围巾", category_code="C11",
                                                           price_fen=2000))
    programme.save(db, shop["tenant"], {"pending_days": 0, "expiry": {"kind": "never"},
                                        "multipliers": {"categories": {"C2": "3"}},
                                        "exclusions": {"categories": ["C11"]}} | rules)
    db.commit()
    body = {"order_no": "SO-9", "ordered_at": "2026-11-01T10:00:00+08:00", "channel": "offline",
            "buyer": {"member_no": "M009"},
            "lines": [{"sku": "SKU-1", "quantity": 3, "unit_price_fen": 10000},
                      {"sku": "SKU-2", "quantity": 1, "unit_price_fen": 5000},
                      {"sku": "SKU-3", "quantity": 2, "unit_price_fen": 2000}]}
    response = client.post("/api/v1/orders", json=body, headers=shop["h"])
    assert response.status_code == 201, response.text
    buyer: int = response.json()["profile_id"]
    return buyer


def test_a_refund_takes_back_what_its_lines_earned(client: TestClient, db: Session, shop: dict[str, Any]) -> None:
    buyer = three_lines(client, db, shop, {})
    assert points(client, shop, buyer)["available"] == 300 + 150  # the scarf earns nothing
    refund_lines(client, shop, "RF-1", (3, 2))  # the excluded scarves: nothing to take back
    assert points(client, shop, buyer)["available"] == 450
    refund_lines(client, shop, "RF-2", (2, 1))  # the lipstick earned 3 x 50
    assert points(client, shop, buyer)["available"] == 300
    refund_lines(client, shop, "RF-3", (1, 1))  # one of three dresses: a third of 300
    assert points(client, shop, buyer)["available"] == 200
    refund_lines(client, shop, "RF-4", (1, 1))
    refund_lines(client, shop, "RF-5", (1, 1))
    assert points(client, shop, buyer)["available"] == 0
    check_invariants(db, shop["tenant"])


def test_a_capped_order_takes_back_each_line_s_share_of_the_cap_exactly(
        client: TestClient, db: Session, shop: dict[str, Any]) -> None:
    """450 points capped at 100: the dresses' 300 become 66.67 and the lipstick's 150 33.33, rounded
    down to 66 and 33, and the point left goes to the larger remainder: 67 and 33. Three single
    dresses then take back 22, 22 and 23 (67 x 1/3, 67 x 2/3 less 22, the rest)."""
    buyer = three_lines(client, db, shop, {"max_points_per_order": 100})
    assert points(client, shop, buyer)["available"] == 100
    taken = []
    for n, line in enumerate([(1, 1), (2, 1), (1, 1), (1, 1)]):
        before = points(client, shop, buyer)["available"]
        refund_lines(client, shop, f"RF-{n}", line)
        taken.append(before - points(client, shop, buyer)["available"])
    assert taken == [22, 33, 22, 23]
    check_invariants(db, shop["tenant"])
