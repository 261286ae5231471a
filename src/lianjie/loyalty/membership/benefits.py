"""Benefits of a paid membership that other rules ask about: the points multiplier and member prices.

A benefit holds while a term is paid up and through its grace period (a member renewing a few days
late still shops at member prices, as at a warehouse club's door); a refunded, upgraded-away or
merged term gives none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy.orm import Session

from lianjie.loyalty.membership import periods, plans
from lianjie.loyalty.membership.models import MembershipPlan
from lianjie.loyalty.membership.terms import local_date


def plan_on(session: Session, tenant_id: int, profile_ids: Sequence[int], at: dt.datetime) -> MembershipPlan | None:
    """The plan of the customer's term running at ``at`` (grace included), if any."""
    term = periods.covering(session, tenant_id, profile_ids, local_date(at, plans.zone_of(session, tenant_id)),
                            with_grace=True)
    return session.get(MembershipPlan, term.plan_id) if term is not None else None


def multiplier_for_ids(session: Session, tenant_id: int, profile_ids: Sequence[int], at: dt.datetime) -> Decimal:
    """The points multiplier of the customer's paid plan (1 without one).

    The points ledger calls this for every order, so a merchant whose plans multiply nothing pays a
    lookup cached for the transaction (plans.facts) and no more.
    """
    if not plans.facts(session, tenant_id).multiplies:
        return Decimal(1)
    plan = plan_on(session, tenant_id, profile_ids, at)
    return Decimal(plan.points_multiplier) if plan is not None else Decimal(1)


def points_multiplier_for(session: Session, tenant_id: int, profile_id: int, at: dt.datetime) -> Decimal:
    return multiplier_for_ids(session, tenant_id, periods.customer_ids(session, tenant_id, profile_id), at)


def has_member_price(session: Session, tenant_id: int, profile_id: int, at: dt.datetime) -> bool:
    plan = plan_on(session, tenant_id, periods.customer_ids(session, tenant_id, profile_id), at)
    return plan is not None and plan.member_price
