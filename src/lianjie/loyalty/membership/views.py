"""A customer's memberships as the API shows them: terms, today's state, reward so far, refund quote."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.loyalty.membership import periods, plans, refunds
from lianjie.loyalty.membership.models import LIVE, Membership, MembershipPeriod, MembershipPlan, PeriodStatus
from lianjie.loyalty.membership.schemas import MembershipOut, PeriodOut
from lianjie.loyalty.membership.terms import local_date


def membership_out(session: Session, membership: Membership, now: dt.datetime) -> MembershipOut:
    day = local_date(now, plans.zone_of(session, membership.tenant_id))
    rows = periods.periods_of(session, membership.id)
    codes = dict(session.execute(select(MembershipPlan.id, MembershipPlan.code)
                                 .where(MembershipPlan.tenant_id == membership.tenant_id)).all())
    live = [p for p in rows if p.status in LIVE]
    running = [p for p in live if p.starts_on <= day] or live
    ended = [p for p in rows if p.status == PeriodStatus.LAPSED.value]  # a refunded renewal leaves a lapse
    shown: MembershipPeriod = running[-1] if running else (ended or rows)[-1]
    plan = session.get(MembershipPlan, shown.plan_id)
    assert plan is not None
    last_live = live[-1] if live else None
    return MembershipOut(
        id=membership.id, profile_id=membership.profile_id, plan_code=codes[membership.plan_id],
        joined_on=membership.joined_on, auto_renew=membership.auto_renew, status=periods.status_on(shown, day),
        ends_on=last_live.ends_on if last_live else None, grace_until=last_live.grace_until if last_live else None,
        reward_accrued_fen=periods.year_reward(session, shown) if shown.status in LIVE else 0,
        refund_quote_fen=refunds.policy_amount(plan, shown, day) if shown.status in LIVE else 0,
        periods=[PeriodOut(plan_code=codes[p.plan_id], **{k: getattr(p, k) for k in PeriodOut.model_fields
                                                          if k != "plan_code"}) for p in rows])


def customer_memberships(session: Session, tenant_id: int, profile_id: int, now: dt.datetime) -> list[MembershipOut]:
    """Every membership of the whole customer (all its profiles), newest first."""
    ids = periods.customer_ids(session, tenant_id, profile_id)
    rows = session.scalars(select(Membership).where(Membership.tenant_id == tenant_id,
                                                    Membership.id.in_(select(MembershipPeriod.membership_id).where(
                                                        MembershipPeriod.profile_id.in_(ids))))
                           .order_by(Membership.id.desc())).all()
    return [membership_out(session, m, now) for m in rows]


def set_auto_renew(session: Session, tenant_id: int, membership_id: int, auto_renew: bool) -> Membership:
    membership = periods.get_membership(session, tenant_id, membership_id)
    if membership.auto_renew != auto_renew:
        membership.auto_renew = auto_renew
        periods.record(session, tenant_id, "auto_renew", membership_id=membership.id,
                       outcome={"auto_renew": auto_renew})
    return membership
