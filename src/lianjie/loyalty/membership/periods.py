"""Finding a customer's memberships and terms; the shared reads every use case builds on."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.errors import Conflict, NotFound
from lianjie.identity.service import member_ids, root_of
from lianjie.loyalty.membership.models import (
    LIVE,
    Membership,
    MembershipAction,
    MembershipPeriod,
    MembershipPlan,
    PeriodKind,
    PeriodStatus,
    RewardAccrual,
)


def customer_ids(session: Session, tenant_id: int, profile_id: int) -> list[int]:
    """Every base profile of the customer ``profile_id`` belongs to (404 for an unknown profile)."""
    return sorted(session.scalars(member_ids(tenant_id, root_of(session, tenant_id, profile_id))))


def get_membership(session: Session, tenant_id: int, membership_id: int, *, lock: bool = False) -> Membership:
    """A membership; ``lock`` holds its row until the transaction ends, so two desks renewing or
    refunding the same membership at once take turns (PostgreSQL; SQLite writers are serial anyway)."""
    query = select(Membership).where(Membership.tenant_id == tenant_id, Membership.id == membership_id)
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFound(f"no membership {membership_id}", code="membership_not_found")
    return row


def periods_of(session: Session, membership_id: int) -> list[MembershipPeriod]:
    return list(session.scalars(select(MembershipPeriod).where(MembershipPeriod.membership_id == membership_id)
                                .order_by(MembershipPeriod.seq)))


def latest(session: Session, membership_id: int) -> MembershipPeriod:
    """The membership's last term that is not closed, else its last term."""
    rows = periods_of(session, membership_id)
    live = [p for p in rows if p.status in LIVE]
    return live[-1] if live else rows[-1]


def live_memberships(session: Session, tenant_id: int, ids: Sequence[int], day: dt.date) -> list[Membership]:
    """The customer's memberships that are paid up or in grace on ``day`` (or start later)."""
    rows = session.scalars(select(Membership).join(MembershipPeriod, MembershipPeriod.membership_id == Membership.id)
                           .where(Membership.tenant_id == tenant_id, MembershipPeriod.profile_id.in_(ids),
                                  MembershipPeriod.status.in_(LIVE), MembershipPeriod.grace_until > day)
                           .distinct().order_by(Membership.id)).all()
    return list(rows)


def covering(session: Session, tenant_id: int, ids: Sequence[int], day: dt.date, *,
             with_grace: bool = False) -> MembershipPeriod | None:
    """The customer's term running on ``day`` (the highest plan if, exceptionally, there are two)."""
    end = MembershipPeriod.grace_until if with_grace else MembershipPeriod.ends_on
    rows = session.execute(select(MembershipPeriod, MembershipPlan.rank)
                           .join(MembershipPlan, MembershipPlan.id == MembershipPeriod.plan_id)
                           .where(MembershipPeriod.tenant_id == tenant_id, MembershipPeriod.profile_id.in_(ids),
                                  MembershipPeriod.status.in_(LIVE), MembershipPeriod.starts_on <= day, end > day)
                           .order_by(MembershipPlan.rank.desc(), MembershipPeriod.id)).all()
    return rows[0][0] if rows else None


def year_periods(session: Session, period: MembershipPeriod) -> list[MembershipPeriod]:
    """The terms of one membership year: ``period`` and the terms its upgrades replaced, oldest first."""
    chain = [period]
    while chain[0].kind == PeriodKind.UPGRADE.value and chain[0].previous_id is not None:
        previous = session.get(MembershipPeriod, chain[0].previous_id)
        if previous is None:
            break
        chain.insert(0, previous)
    return chain


def year_reward(session: Session, period: MembershipPeriod) -> int:
    """The membership year's reward: each term's eligible spend at its plan's rate, capped by the last plan.

    Rounded down once per term; refunds of the year's orders are already netted in the accruals.
    """
    total = 0
    plan = session.get(MembershipPlan, period.plan_id)
    assert plan is not None
    for term in year_periods(session, period):
        term_plan = session.get(MembershipPlan, term.plan_id)
        assert term_plan is not None
        eligible = sum(session.scalars(select(RewardAccrual.eligible_fen).where(RewardAccrual.period_id == term.id)))
        total += max(0, eligible) * term_plan.reward_bp // 10_000
    return min(total, plan.reward_cap_fen)


def record(session: Session, tenant_id: int, kind: str, *, membership_id: int | None = None,
           period_id: int | None = None, key: str | None = None, request: dict[str, Any] | None = None,
           outcome: dict[str, Any] | None = None, merge_id: int | None = None,
           operator: str | None = None) -> MembershipAction:
    action = MembershipAction(tenant_id=tenant_id, kind=kind, membership_id=membership_id, period_id=period_id,
                              idempotency_key=key, request=request or {}, outcome=outcome or {}, merge_id=merge_id,
                              operator=operator)
    session.add(action)
    session.flush()
    return action


def replay(session: Session, tenant_id: int, key: str, kind: str, request: dict[str, Any]) -> MembershipAction | None:
    """The action stored under ``key`` if this request was applied before; 409 if the key served another."""
    stored = session.scalar(select(MembershipAction).where(MembershipAction.tenant_id == tenant_id,
                                                           MembershipAction.idempotency_key == key))
    if stored is None:
        return None
    if stored.kind != kind or stored.request != request:
        raise Conflict(f"idempotency key {key!r} was already used for a different {stored.kind} request "
                       f"({stored.request})", code="idempotency_key_reused", field="idempotency_key")
    return stored


def status_on(period: MembershipPeriod, day: dt.date) -> str:
    """A term's state on ``day`` as a person reads it (the stored status says how it ended)."""
    if period.status in (PeriodStatus.REFUNDED.value, PeriodStatus.UPGRADED.value, PeriodStatus.MERGED.value):
        return period.status
    if day < period.starts_on:
        return "pending"
    if day < period.ends_on:
        return PeriodStatus.ACTIVE.value
    if period.status == PeriodStatus.RENEWED.value:
        return PeriodStatus.RENEWED.value
    return PeriodStatus.GRACE.value if day < period.grace_until else PeriodStatus.LAPSED.value
