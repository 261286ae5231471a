"""Benefits other rules ask about: member prices and the points multiplier, through term and grace."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.loyalty import ledger, programme
from lianjie.loyalty.membership import benefits, lifecycle, plans
from lianjie.loyalty.models import PointsOperation
from tests.loyalty.helpers import order, person
from tests.loyalty.membership.helpers import local, make_shop

D = dt.date


def test_member_price_and_multiplier_hold_through_grace_only(db: Session) -> None:
    shop = make_shop(db)
    tenant = shop["tenant"]
    me = person(db, tenant, "U1")
    executive = plans.get_plan(db, tenant, "exec")
    lifecycle.buy(db, tenant, me, executive, D(2025, 1, 10), 65000, order_no="E-1", key="e1")
    for day, price, factor in [("2025-01-09", False, 1), ("2025-01-10", True, 2), ("2026-01-09", True, 2),
                               ("2026-02-08", True, 2), ("2026-02-09", False, 1)]:  # grace ends 2026-02-09
        assert benefits.has_member_price(db, tenant, me, local(day)) is price, day
        assert benefits.points_multiplier_for(db, tenant, me, local(day)) == Decimal(factor), day
    gold = plans.get_plan(db, tenant, "gold")
    other = person(db, tenant, "U2")
    lifecycle.buy(db, tenant, other, gold, D(2025, 1, 10), 26000, order_no="G-1", key="g1")
    assert not benefits.has_member_price(db, tenant, other, local("2025-06-01"))


def test_the_plan_multiplier_stacks_with_the_tier_multiplier(db: Session) -> None:
    shop = make_shop(db)
    tenant = shop["tenant"]
    programme.save(db, tenant, {"pending_days": 0, "tiers": [
        {"code": "member", "name": "会员", "threshold": 0, "points_multiplier": "1.5"}]})
    me = person(db, tenant, "U1")
    lifecycle.buy(db, tenant, me, plans.get_plan(db, tenant, "exec"), D(2025, 1, 10), 65000, order_no="E-1",
                  key="e1")
    order(db, tenant, me, ("SKU-1", None, 10000), order_no="O-1", at=local("2025-02-01"))  # ¥100: tier joins
    order(db, tenant, me, ("SKU-1", None, 10000), order_no="O-2", at=local("2025-02-02"))
    earned = [ledger.stored_result(db, op).points for op in _order_ops(db, tenant, ["O-1", "O-2"])]
    assert earned == [200, 300]  # 100 x plan 2 (no tier yet), then 100 x tier 1.5 x plan 2


def _order_ops(db: Session, tenant: int, order_nos: list[str]) -> list[int]:
    return [db.scalars(select(PointsOperation.id).where(PointsOperation.tenant_id == tenant,
                                                        PointsOperation.idempotency_key == f"order:{no}")).one()
            for no in order_nos]
