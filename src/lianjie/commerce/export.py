"""Commerce's section of the PIPL export (identity/export.py): the customer's orders, each with its
lines and its refunds (with their lines), money in fen as stored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from lianjie.commerce.models import Order, Refund
from lianjie.crypto import PiiCipher
from lianjie.identity.export import register_section, row, rows


def orders(session: Session, cipher: PiiCipher, tenant_id: int, profile_ids: Sequence[int]) -> list[dict[str, Any]]:
    found = session.scalars(select(Order).where(Order.tenant_id == tenant_id, Order.profile_id.in_(profile_ids))
                            .options(selectinload(Order.lines)).order_by(Order.ordered_at, Order.id)).all()
    refunds: dict[int, list[Refund]] = {}
    if found:
        for refund in session.scalars(select(Refund).where(Refund.tenant_id == tenant_id,
                                                           Refund.order_id.in_([o.id for o in found]))
                                      .options(selectinload(Refund.lines)).order_by(Refund.refunded_at, Refund.id)):
            refunds.setdefault(refund.order_id, []).append(refund)
    return [row(o, exclude={"tenant_id"})
            | {"lines": rows(o.lines, exclude={"tenant_id", "order_id"}),
               "refunds": [row(r, exclude={"tenant_id", "order_id"}) | {"lines": rows(r.lines, exclude={"tenant_id"})}
                           for r in refunds.get(o.id, [])]}
            for o in found]


def install() -> None:
    register_section("orders", ["orders", "order_lines", "refunds", "refund_lines"], orders)
