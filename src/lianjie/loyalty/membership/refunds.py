"""Refunding a membership: by the plan's policy through the API, or because its order was refunded.

The policy (per plan): the whole fee back within ``refund_full_days`` of the term's start (``null``:
always, as Costco does), then either the unused days' share (``prorated``) or nothing. Example: a
26,000 fen year (365 days) with 30 full-refund days, refunded on day 100 under ``prorated``: 265 days
unused, 26,000 x 265 // 365 = 18,876 fen (rounded down: the merchant never pays out a fen more than
the unused share).

What was paid for a term is its whole fee: for an upgraded term that is the upgrade charge *and* the
first term's unused rest carried into it (the customer paid both, once for the first plan and once
for the step up). Example: a 36,500 fen year upgraded on day 60 to a 73,000 plan, charged 30,600 and
carrying the 30,600 unused, is a 61,200 fen term of 306 days; refunded in full that is 61,200 back,
prorated on its day 31 it is 61,200 x 275 // 306 = 55,000.

A refunded term is closed on the refund day. Its unrecognised fee is reversed, and when more than that
goes back the difference reverses revenue already recognised, in the refund's month (kpis.py). The
reward is clawed back exactly (rewards.claw_back): the year's accrued reward is forfeited, the
certificate the refunded renewal paid out is voided, or recorded as owed if it was already used. A
refunded renewal puts the term before it back to ``active``, so it lapses (or is renewed again) as if
the renewal had never happened. Refunding an upgrade ends the membership (the term it replaced is
not revived): to step back to the lower plan, sell that plan again.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.commerce.events import OrderRefunded
from lianjie.errors import Conflict, ValidationFailed
from lianjie.loyalty.membership import periods, plans, rewards
from lianjie.loyalty.membership.lifecycle import Written
from lianjie.loyalty.membership.models import (
    LIVE,
    MembershipAction,
    MembershipPeriod,
    MembershipPlan,
    PeriodStatus,
    RefundAfter,
)
from lianjie.loyalty.membership.schemas import RefundIn
from lianjie.loyalty.membership.terms import days_between, local_date
from lianjie.tenants import audit


def paid_for(period: MembershipPeriod) -> int:
    """What the customer paid for ``period`` and has not had back: its charge plus the fee an upgrade
    carried into it from the term it replaced."""
    return period.charged_fen + period.carried_fen - period.refunded_fen


def policy_amount(plan: MembershipPlan, period: MembershipPeriod, day: dt.date) -> int:
    """What the plan's refund policy gives back of what was paid for ``period`` on ``day``."""
    paid = paid_for(period)
    used = days_between(period.starts_on, day)
    if plan.refund_full_days is None or used < plan.refund_full_days:
        return paid
    if plan.refund_after == RefundAfter.NONE.value:
        return 0
    span_end = period.ends_on - dt.timedelta(days=period.extension_days)
    total = days_between(period.starts_on, span_end)
    unused = max(0, min(total, days_between(max(day, period.starts_on), span_end)))
    return paid * unused // total if total > 0 else 0


def refund_period(session: Session, tenant_id: int, period: MembershipPeriod, amount: int, day: dt.date, *,
                  key: str, request: dict[str, object], operator: str | None = None) -> MembershipAction:
    """Close ``period`` as refunded with ``amount`` fen given back, and claw the reward back."""
    if period.status == PeriodStatus.REFUNDED.value:  # more money back for a term already refunded
        period.refunded_fen += amount
        return periods.record(session, tenant_id, "refund", membership_id=period.membership_id, period_id=period.id,
                              key=key, request=request, operator=operator,
                              outcome={"refunded_fen": amount, "already_refunded": True})
    was = period.status
    period.status = PeriodStatus.REFUNDED.value
    period.closed_on = min(max(day, period.starts_on), period.ends_on)
    period.refunded_fen += amount
    if period.previous_id is not None and period.kind == "renew":
        previous = session.get(MembershipPeriod, period.previous_id)
        if previous is not None and previous.status == PeriodStatus.RENEWED.value:
            previous.status = PeriodStatus.ACTIVE.value
    outcome: dict[str, object] = {"refunded_fen": amount, "status_was": was, **rewards.claw_back(session, tenant_id,
                                                                                                   period)}
    session.flush()
    return periods.record(session, tenant_id, "refund", membership_id=period.membership_id, period_id=period.id,
                          key=key, request=request, operator=operator, outcome=outcome)


def on_order_refunded(session: Session, event: OrderRefunded) -> None:
    """A refunded plan line refunds the term it bought, with the amount commerce gave back. Once per refund."""
    if not plans.facts(session, event.tenant_id).skus:
        return
    by_sku = plans.plans_by_sku(session, event.tenant_id)
    zone = plans.zone_of(session, event.tenant_id)
    for line in event.lines:
        if line.sku not in by_sku:
            continue
        key = f"refund:{event.refund_no}:{line.line_no}"
        if session.scalar(select(MembershipAction.id).where(MembershipAction.tenant_id == event.tenant_id,
                                                            MembershipAction.idempotency_key == key)) is not None:
            continue
        period = session.scalar(select(MembershipPeriod).where(
            MembershipPeriod.tenant_id == event.tenant_id,
            MembershipPeriod.source_key == f"order:{event.order_no}:{line.line_no}"))
        if period is None:
            continue  # a guest's plan line: nothing was started
        refund_period(session, event.tenant_id, period, line.paid_fen, local_date(event.refunded_at, zone), key=key,
                      request={"order_no": event.order_no, "refund_no": event.refund_no, "line_no": line.line_no})
    rewards.reverse(session, event.tenant_id, event.order_no, event.refund_no, event.lines, set(by_sku),
                    event.refunded_fen, event.order_paid_fen)


def refund_manually(session: Session, tenant_id: int, membership_id: int, data: RefundIn, now: dt.datetime) -> Written:
    """Refund the last live term (the running one, or a renewal paid ahead) by the policy, or
    ``amount_fen`` up to what was paid for it."""
    request = data.model_dump(exclude={"idempotency_key"})
    stored = periods.replay(session, tenant_id, data.idempotency_key, "refund", request)
    if stored is not None:
        return Written(stored, True)
    membership = periods.get_membership(session, tenant_id, membership_id, lock=True)
    day = local_date(now, plans.zone_of(session, tenant_id))
    live = [p for p in periods.periods_of(session, membership.id) if p.status in LIVE]
    if not live:
        raise Conflict(f"membership {membership_id} has no live term to refund", code="nothing_to_refund")
    period = live[-1]  # the last paid: a renewal paid ahead is what a member cancelling gets back first
    plan = session.get(MembershipPlan, period.plan_id)
    assert plan is not None
    paid = paid_for(period)
    amount = policy_amount(plan, period, day) if data.amount_fen is None else data.amount_fen
    if amount > paid:
        raise ValidationFailed(f"amount_fen {amount} is more than the {paid} fen paid for the term",
                               field="amount_fen", code="refund_exceeds_paid")
    action = refund_period(session, tenant_id, period, amount, day, key=data.idempotency_key, request=request,
                           operator=data.operator)
    audit.record(session, tenant_id, "membership.refund", f"membership:{membership.id}",
                 after={"period_id": period.id, "refunded_fen": amount, "paid_fen": paid, "reason": data.reason,
                        "operator": data.operator})
    return Written(action)
