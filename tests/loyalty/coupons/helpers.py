"""Coupon test helpers: a shop with a category tree, products and stores, templates made through the
service, and baskets as a till sends them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from lianjie.commerce import catalogue, orders
from lianjie.commerce.models import Order
from lianjie.commerce.schemas import CategoryIn, OrderIn, ProductIn
from lianjie.crypto import get_cipher
from lianjie.db import utcnow
from lianjie.loyalty.coupons import issuing, templates
from lianjie.loyalty.coupons.models import CouponTemplate
from lianjie.loyalty.coupons.schemas import BasketIn, IssueIn, RedeemIn, TemplateIn
from lianjie.tenants.models import Merchant
from tests.factories import make_merchant, make_store

# 服装 C1 > 女装 C11 > 连衣裙 C111; 美妆 C2.
PRODUCTS = {"DRESS": ("C111", 39900), "COAT": ("C11", 59900), "LIPSTICK": ("C2", 19900), "GIFT": ("C2", 2900)}


def shop(db: Session, slug: str = "huamei") -> Merchant:
    merchant = make_merchant(db, slug)
    for code, name, parent in [("C1", "服装", None), ("C11", "女装", "C1"), ("C111", "连衣裙", "C11"),
                               ("C2", "美妆", None)]:
        catalogue.upsert_category(db, merchant.id, CategoryIn(code=code, name=name, parent_code=parent))
    for sku, (category, price) in PRODUCTS.items():
        catalogue.upsert_product(db, merchant.id, ProductIn(sku=sku, name=sku.title(), category_code=category,
                                                            price_fen=price))
    make_store(db, merchant, "SH001")
    make_store(db, merchant, "BJ001", city="北京", province="北京")
    return merchant


def template(db: Session, tenant_id: int, code: str = "T20", **fields: Any) -> CouponTemplate:
    """A template; default ¥20 off with no limits."""
    values: dict[str, Any] = {"code": code, "name": code, "kind": "amount_off", "amount_off_fen": 2000}
    if fields.get("kind") not in (None, "amount_off"):
        values.pop("amount_off_fen")
    values.update(fields)
    return templates.create(db, tenant_id, TemplateIn.model_validate(values))[0]


def give(db: Session, tenant_id: int, template_code: str, profile_id: int | None = None, *, key: str | None = None,
         count: int | None = None) -> list[str]:
    """Issue to a customer (or ``count`` unbound codes); returns the codes."""
    data = IssueIn(idempotency_key=key or f"k-{template_code}-{profile_id}-{count}-{next(_n)}",
                   profile_id=profile_id, count=count)
    issued = issuing.issue(db, tenant_id, template_code, data)
    return [c.code for c in issued.out(db).coupons]


_n = iter(range(1, 10**9))


def lines(*items: tuple[str, int, int]) -> list[dict[str, Any]]:
    """Basket lines (sku, quantity, amount fen); categories left for the catalogue to fill in."""
    return [{"sku": sku, "quantity": q, "amount_fen": fen} for sku, q, fen in items]


def basket(code: str, *items: tuple[str, int, int], **fields: Any) -> BasketIn:
    return BasketIn.model_validate({"code": code, "lines": lines(*items), **fields})


def redeem_in(code: str, order_no: str, *items: tuple[str, int, int], **fields: Any) -> RedeemIn:
    return RedeemIn.model_validate({"code": code, "order_no": order_no, "lines": lines(*items), **fields})


def sell(db: Session, tenant_id: int, order_no: str, user_id: str | None, *coupons: tuple[str, int],
         at: dt.datetime | None = None) -> Order:
    """An order through commerce, as a till sends it: one dress (39,900) and one lipstick (19,900), with
    ``coupons`` (code, fen off) in its discounts, which redeems them; ``user_id`` None: a guest."""
    data = OrderIn.model_validate({
        "order_no": order_no, "ordered_at": (at or utcnow()).isoformat(), "store_code": "SH001", "channel": "offline",
        "buyer": {"user_id": user_id} if user_id else {},
        "lines": [{"sku": "DRESS", "quantity": 1, "unit_price_fen": 39900},
                  {"sku": "LIPSTICK", "quantity": 1, "unit_price_fen": 19900}],
        "discounts": [{"kind": "coupon", "code": code, "amount_fen": fen} for code, fen in coupons]})
    order, _ = orders.record_order(db, get_cipher(), tenant_id, data)
    return order
