"""Joining, renewing and upgrading: from orders (the plan's SKU on an order line), from the API (a
manual renewal or an upgrade), and from the daily jobs (automatic renewal, grace and lapse).

Rules, as a membership warehouse runs them:

- **Buying a plan** (an order line with its SKU; quantity n buys n terms at once): a customer without a
  live membership *joins* on the order's local date. One with a live membership (paid up, or inside
  the grace period) *renews*: the new term starts where the last one ends, also when paid during grace,
  so the member loses no days and gains none (Costco's rule). Bought after the grace period it is a
  new join, a new membership, and it does not count as a renewal. A plan of a higher rank bought
  mid-term is an *upgrade* at the prorated fee (:func:`terms.upgrade_fee`); the term end stays.
- **Automatic renewal**: the ``renew-due`` job renews memberships with ``auto_renew`` on their due day
  (or later, inside grace) at the plan's list fee. lianjie cannot charge WeChat Pay itself; the renewal
  is recorded as an ``auto_charge`` term under the idempotency key ``auto:<term id>``, which is the
  charge request the payment integration collects (its 委托代扣 contract) and finance reconciles. A
  failed charge is undone by refunding that term.
- **Grace and lapse**: the ``lapse`` job marks terms past their end ``grace`` and, after the grace
  days, ``lapsed``; the year's unpaid reward is then forfeited (recorded on the lapse action).
- At each renewal the reward of the year that ends is paid out as a certificate (rewards.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from lianjie.commerce.events import OrderCompleted
from lianjie.errors import Conflict, ValidationFailed
from lianjie.loyalty.membership import periods, plans, rewards
from lianjie.loyalty.membership.models import (
    LIVE,
    Membership,
    MembershipAction,
    MembershipPeriod,
    MembershipPlan,
    PeriodKind,
    PeriodStatus,
)
from lianjie.loyalty.membership.schemas import RenewIn, UpgradeIn
from lianjie.loyalty.membership.terms import add_months, days_between, local_date, recognised, upgrade_fee


@dataclass(slots=True)
class Written:
    action: MembershipAction
    replayed: bool = False


def _period(session: Session, membership: Membership, plan: MembershipPlan, kind: PeriodKind, profile_id: int,
            starts_on: dt.date, ends_on: dt.date, *, charged: int, carried: int = 0, payment: str,
            order_no: str | None, key: str, previous: MembershipPeriod | None = None,
            extension_days: int = 0) -> MembershipPeriod:
    seq = (session.scalar(select(MembershipPeriod.seq).where(MembershipPeriod.membership_id == membership.id)
                          .order_by(MembershipPeriod.seq.desc()).limit(1)) or 0) + 1
    period = MembershipPeriod(
        tenant_id=membership.tenant_id, membership_id=membership.id, profile_id=profile_id, plan_id=plan.id, seq=seq,
        kind=kind.value, previous_id=previous.id if previous else None, starts_on=starts_on, ends_on=ends_on,
        grace_until=ends_on + dt.timedelta(days=plan.grace_days), fee_fen=charged + carried, charged_fen=charged,
        carried_fen=carried, refunded_fen=0, payment=payment, order_no=order_no, source_key=key,
        status=PeriodStatus.ACTIVE.value, extension_days=extension_days)
    session.add(period)
    session.flush()
    return period


def join(session: Session, tenant_id: int, profile_id: int, plan: MembershipPlan, day: dt.date, charged: int, *,
         months: int, payment: str, order_no: str | None, key: str, auto_renew: bool = False) -> MembershipPeriod:
    membership = Membership(tenant_id=tenant_id, profile_id=profile_id, plan_id=plan.id, joined_on=day,
                            anchor_day=day.day, auto_renew=auto_renew)
    session.add(membership)
    session.flush()
    period = _period(session, membership, plan, PeriodKind.JOIN, profile_id, day, add_months(day, months, day.day),
                     charged=charged, payment=payment, order_no=order_no, key=key)
    periods.record(session, tenant_id, "join", membership_id=membership.id, period_id=period.id,
                   outcome={"plan": plan.code, "starts_on": str(day), "ends_on": str(period.ends_on)})
    return period


def renew(session: Session, membership: Membership, plan: MembershipPlan, day: dt.date, charged: int, *,
          months: int, payment: str, order_no: str | None, key: str, profile_id: int) -> MembershipPeriod:
    """The next term, from the last one's end; pays the ending year's reward out as a certificate."""
    last = periods.latest(session, membership.id)
    if last.status not in LIVE or day >= last.grace_until:
        raise Conflict(f"membership {membership.id} lapsed on {last.grace_until}; buying the plan again is a new "
                       "join", code="membership_lapsed")
    period = _period(session, membership, plan, PeriodKind.RENEW, profile_id, last.ends_on,
                     add_months(last.ends_on, months, membership.anchor_day), charged=charged, payment=payment,
                     order_no=order_no, key=key, previous=last)
    last.status = PeriodStatus.RENEWED.value
    membership.plan_id = plan.id
    certificate = rewards.issue_certificate(session, membership.tenant_id, last, period, day)
    periods.record(session, membership.tenant_id, "renew", membership_id=membership.id, period_id=period.id,
                   outcome={"plan": plan.code, "starts_on": str(period.starts_on), "ends_on": str(period.ends_on),
                            "payment": payment, "certificate": certificate.code if certificate else None,
                            "certificate_fen": certificate.amount_fen if certificate else 0})
    return period


def _upgradeable(session: Session, membership: Membership, plan: MembershipPlan,
                 day: dt.date) -> tuple[MembershipPeriod, MembershipPlan, int, int]:
    """The term an upgrade on ``day`` replaces, its plan, and the year's total and remaining days."""
    current = periods.latest(session, membership.id)
    if current.status not in LIVE or not current.starts_on <= day < current.ends_on:
        raise Conflict(f"membership {membership.id} has no term running on {day} to upgrade (renewed ahead, "
                       "in grace or lapsed): renew into the plan instead", code="not_upgradeable")
    old = session.get(MembershipPlan, current.plan_id)
    assert old is not None
    if plan.rank <= old.rank:
        raise ValidationFailed(f"plan {plan.code!r} (rank {plan.rank}) is not above {old.code!r} (rank {old.rank}); "
                               "change to it at renewal", field="plan_code", code="not_an_upgrade")
    year_start = periods.year_periods(session, current)[0].starts_on
    return current, old, days_between(year_start, current.ends_on), days_between(day, current.ends_on)


def quote_upgrade(session: Session, membership: Membership, plan: MembershipPlan, day: dt.date) -> tuple[int, int, int]:
    """(fee in fen, total days, remaining days) of upgrading on ``day``."""
    _, old, total, remaining = _upgradeable(session, membership, plan, day)
    return upgrade_fee(old.fee_fen, plan.fee_fen, total, remaining), total, remaining


def upgrade(session: Session, membership: Membership, plan: MembershipPlan, day: dt.date, charged: int | None, *,
            payment: str, order_no: str | None, key: str, profile_id: int) -> MembershipPeriod:
    """Replace the running term by the higher plan until the same end; the old term's unrecognised fee
    is carried into the new one, so revenue keeps flowing ratably."""
    current, old, total, remaining = _upgradeable(session, membership, plan, day)
    quote = upgrade_fee(old.fee_fen, plan.fee_fen, total, remaining)
    charged = quote if charged is None else charged
    span_end = current.ends_on - dt.timedelta(days=current.extension_days)
    carried = current.fee_fen - recognised(current.fee_fen, current.starts_on, span_end, span_end, day)
    period = _period(session, membership, plan, PeriodKind.UPGRADE, profile_id, day, current.ends_on,
                     charged=charged, carried=carried, payment=payment, order_no=order_no, key=key, previous=current,
                     extension_days=current.extension_days)
    current.status, current.closed_on = PeriodStatus.UPGRADED.value, day
    membership.plan_id = plan.id
    periods.record(session, membership.tenant_id, "upgrade", membership_id=membership.id, period_id=period.id,
                   outcome={"from": old.code, "to": plan.code, "quote_fen": quote, "charged_fen": charged,
                            "carried_fen": carried, "remaining_days": remaining, "total_days": total})
    return period


def buy(session: Session, tenant_id: int, profile_id: int, plan: MembershipPlan, day: dt.date, charged: int, *,
        quantity: int = 1, payment: str = "order", order_no: str | None, key: str) -> MembershipPeriod:
    """A plan bought: join, renew or upgrade, as the module docstring says."""
    ids = periods.customer_ids(session, tenant_id, profile_id)
    live = periods.live_memberships(session, tenant_id, ids, day)
    if not live:
        return join(session, tenant_id, profile_id, plan, day, charged, months=plan.term_months * quantity,
                    payment=payment, order_no=order_no, key=key)
    ranks = {m.id: (session.get(MembershipPlan, m.plan_id) or plan).rank for m in live}
    membership = periods.get_membership(session, tenant_id, max(live, key=lambda m: (ranks[m.id], -m.id)).id,
                                        lock=True)
    current = periods.latest(session, membership.id)
    if plan.rank > ranks[membership.id] and current.starts_on <= day < current.ends_on and quantity == 1:
        return upgrade(session, membership, plan, day, charged, payment=payment, order_no=order_no, key=key,
                       profile_id=profile_id)
    return renew(session, membership, plan, day, charged, months=plan.term_months * quantity, payment=payment,
                 order_no=order_no, key=key, profile_id=profile_id)


def on_order_completed(session: Session, event: OrderCompleted) -> None:
    """Plan lines buy memberships; the rest of the order accrues the reward. Once per order line."""
    if not plans.facts(session, event.tenant_id).skus:
        return
    by_sku = plans.plans_by_sku(session, event.tenant_id)
    zone = plans.zone_of(session, event.tenant_id)
    day = local_date(event.ordered_at, zone)
    for line in event.lines:
        plan = by_sku.get(line.sku)
        if plan is None:
            continue
        key = f"order:{event.order_no}:{line.line_no}"
        if session.scalar(select(MembershipPeriod.id).where(MembershipPeriod.tenant_id == event.tenant_id,
                                                            MembershipPeriod.source_key == key)) is not None:
            continue
        if event.profile_id is None:  # a guest: nobody to make a member; finance sees it in the actions
            if periods.replay(session, event.tenant_id, key, "unassigned", {"order_no": event.order_no}) is None:
                periods.record(session, event.tenant_id, "unassigned", key=key, request={"order_no": event.order_no},
                               outcome={"plan": plan.code, "paid_fen": line.paid_fen})
            continue
        buy(session, event.tenant_id, event.profile_id, plan, day, line.paid_fen, quantity=line.quantity,
            order_no=event.order_no, key=key)
    if event.profile_id is not None:
        rewards.accrue(session, event.tenant_id, event.profile_id, event.order_no, event.lines, set(by_sku),
                       event.ordered_at, zone)


# ---- the API's writes -------------------------------------------------------------------------------


def _write(session: Session, tenant_id: int, key: str, kind: str, request: dict[str, Any]) -> Written | None:
    stored = periods.replay(session, tenant_id, key, kind, request)
    return Written(stored, True) if stored is not None else None


def _stamp(session: Session, tenant_id: int, period: MembershipPeriod, key: str, request: dict[str, Any],
           operator: str | None) -> Written:
    """Put the client's key on the action the write recorded, so a retry finds it."""
    action = session.scalars(select(MembershipAction).where(MembershipAction.tenant_id == tenant_id,
                                                            MembershipAction.period_id == period.id)
                             .order_by(MembershipAction.id.desc()).limit(1)).one()
    action.idempotency_key, action.request, action.operator = key, request, operator
    session.flush()
    return Written(action)


def renew_manually(session: Session, tenant_id: int, membership_id: int, data: RenewIn, now: dt.datetime) -> Written:
    """A renewal paid at the desk (the till's receipt in ``order_no``), at the plan's list fee."""
    request = data.model_dump(exclude={"idempotency_key"})
    replayed = _write(session, tenant_id, data.idempotency_key, "renew", request)
    if replayed is not None:
        return replayed
    membership = periods.get_membership(session, tenant_id, membership_id, lock=True)
    plan = plans.get_plan(session, tenant_id, data.plan_code) if data.plan_code else \
        session.get(MembershipPlan, membership.plan_id)
    assert plan is not None
    day = local_date(now, plans.zone_of(session, tenant_id))
    period = renew(session, membership, plan, day, plan.fee_fen, months=plan.term_months, payment="manual",
                   order_no=data.order_no, key=f"api:{data.idempotency_key}", profile_id=membership.profile_id)
    return _stamp(session, tenant_id, period, data.idempotency_key, request, data.operator)


def upgrade_manually(session: Session, tenant_id: int, membership_id: int, data: UpgradeIn,
                     now: dt.datetime) -> Written:
    request = data.model_dump(exclude={"idempotency_key"})
    replayed = _write(session, tenant_id, data.idempotency_key, "upgrade", request)
    if replayed is not None:
        return replayed
    membership = periods.get_membership(session, tenant_id, membership_id, lock=True)
    plan = plans.get_plan(session, tenant_id, data.plan_code)
    day = local_date(now, plans.zone_of(session, tenant_id))
    period = upgrade(session, membership, plan, day, None, payment="manual", order_no=data.order_no,
                     key=f"api:{data.idempotency_key}", profile_id=membership.profile_id)
    return _stamp(session, tenant_id, period, data.idempotency_key, request, data.operator)


# ---- the daily jobs ---------------------------------------------------------------------------------


def renew_due(session: Session, tenant_id: int, today: dt.date, *, limit: int = 500) -> int:
    """Renew up to ``limit`` auto-renewing memberships due by ``today`` (still inside grace); returns how many.

    A term renewed here is no longer due, so calling again until it returns 0 processes everything once.
    """
    due = session.execute(select(MembershipPeriod, Membership).join(Membership,
                                                                    Membership.id == MembershipPeriod.membership_id)
                          .where(MembershipPeriod.tenant_id == tenant_id, Membership.auto_renew.is_(True),
                                 MembershipPeriod.status.in_((PeriodStatus.ACTIVE.value, PeriodStatus.GRACE.value)),
                                 MembershipPeriod.ends_on <= today, MembershipPeriod.grace_until > today)
                          .order_by(MembershipPeriod.id).limit(limit)).all()
    for period, membership in due:
        plan = session.get(MembershipPlan, membership.plan_id)
        assert plan is not None
        renew(session, membership, plan, today, plan.fee_fen, months=plan.term_months, payment="auto_charge",
              order_no=None, key=f"auto:{period.id}", profile_id=period.profile_id)
    return len(due)


def lapse(session: Session, tenant_id: int, today: dt.date, *, limit: int = 500) -> tuple[int, int]:
    """Terms past their end go into grace, and past their grace lapse; returns (into grace, lapsed)."""
    rows = session.scalars(select(MembershipPeriod).where(
        MembershipPeriod.tenant_id == tenant_id,
        or_(and_(MembershipPeriod.status == PeriodStatus.ACTIVE.value, MembershipPeriod.ends_on <= today),
            and_(MembershipPeriod.status == PeriodStatus.GRACE.value, MembershipPeriod.grace_until <= today)))
        .order_by(MembershipPeriod.id).limit(limit)).all()
    graced = lapsed = 0
    for period in rows:
        if today >= period.grace_until:
            period.status = PeriodStatus.LAPSED.value
            lapsed += 1
            periods.record(session, tenant_id, "lapse", membership_id=period.membership_id, period_id=period.id,
                           outcome={"grace_until": str(period.grace_until),
                                    "reward_forfeited_fen": periods.year_reward(session, period)})
        elif period.status == PeriodStatus.ACTIVE.value:
            period.status = PeriodStatus.GRACE.value
            graced += 1
    session.flush()
    return graced, lapsed
