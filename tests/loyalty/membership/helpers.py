"""Paid membership test helpers: a shop with two plans and their products, and orders through the API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from lianjie.commerce import catalogue
from lianjie.commerce.schemas import ProductIn
from lianjie.loyalty import programme
from lianjie.loyalty.membership import plans
from lianjie.loyalty.membership.schemas import PlanIn
from tests.commerce.test_catalogue import tree
from tests.factories import bearer, make_admin_key, make_merchant, make_store

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
GOLD = {"code": "gold", "name": "金卡会员", "sku": "MEM-GOLD", "fee_fen": 26000, "term_months": 12, "grace_days": 30,
        "rank": 1}
EXEC = {"code": "exec", "name": "至尊会员", "sku": "MEM-EXEC", "fee_fen": 65000, "term_months": 12, "grace_days": 30,
        "reward_bp": 200, "reward_cap_fen": 125000, "member_price": True, "points_multiplier": "2", "rank": 2}


def add_plan(db: Session, tenant_id: int, **fields: Any) -> None:
    catalogue.upsert_product(db, tenant_id, ProductIn(sku=fields["sku"], name=fields["name"],
                                                      price_fen=fields["fee_fen"]))
    plans.create_plan(db, tenant_id, PlanIn.model_validate(fields))


def make_shop(db: Session, slug: str = "huamei") -> dict[str, Any]:
    merchant = make_merchant(db, slug)
    tree(db, merchant.id)
    make_store(db, merchant)
    programme.save(db, merchant.id, {"pending_days": 0, "expiry": {"kind": "never"}})
    add_plan(db, merchant.id, **GOLD)
    add_plan(db, merchant.id, **EXEC)
    return {"tenant": merchant.id, "merchant": merchant, "key": make_admin_key(db, merchant),
            "h": bearer(make_admin_key(db, merchant))}


def local(day: str, hour: int = 12) -> dt.datetime:
    """Noon (by default) of a Shanghai calendar day."""
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), SHANGHAI)


def buy(client: TestClient, shop: dict[str, Any], order_no: str, day: str, *lines: tuple[str, int],
        buyer: dict[str, str] | None = None) -> dict[str, Any]:
    """An order through the API on ``day``; lines are (sku, paid fen), one unit each."""
    body = {"order_no": order_no, "ordered_at": local(day).isoformat(), "store_code": "SH001", "channel": "offline",
            "buyer": buyer if buyer is not None else {"member_no": "M001"},
            "lines": [{"sku": sku, "quantity": 1, "unit_price_fen": fen} for sku, fen in lines]}
    response = client.post("/api/v1/orders", json=body, headers=shop["h"])
    assert response.status_code in (200, 201), response.text
    out: dict[str, Any] = response.json()
    return out


def refund(client: TestClient, shop: dict[str, Any], order_no: str, refund_no: str, day: str,
           lines: list[dict[str, int]] | None = None) -> None:
    body: dict[str, Any] = {"refund_no": refund_no, "refunded_at": local(day).isoformat()}
    if lines is not None:
        body["lines"] = lines
    response = client.post(f"/api/v1/orders/{order_no}/refunds", json=body, headers=shop["h"])
    assert response.status_code in (200, 201), response.text


def memberships(client: TestClient, shop: dict[str, Any], profile_id: int) -> list[dict[str, Any]]:
    response = client.get("/api/v1/memberships", params={"profile_id": profile_id}, headers=shop["h"])
    assert response.status_code == 200, response.text
    out: list[dict[str, Any]] = response.json()
    return out
