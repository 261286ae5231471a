"""Reading a customer's points and tier: balance, expiring soon, history, tier history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from lianjie.db import utcnow
from lianjie.loyalty import ledger, programme, tiers
from lianjie.loyalty.models import PointsAccount, PointsEntry, PointsLot, PointsOperation, TierAssignment
from lianjie.loyalty.schemas import BalanceOut, CurrentTier, EntryOut, ExpiringOut


def balance(session: Session, tenant_id: int, profile_id: int, now: dt.datetime | None = None) -> BalanceOut:
    now = now or utcnow()
    customer, config = ledger.customer_and_rules(session, tenant_id, profile_id)
    available, pending, debt = ledger.balances(session, customer, now)
    return BalanceOut(profile_id=customer.root, available=max(available - debt, 0), pending=pending, debt=debt,
                      expiring_soon=_expiring(session, customer, now, config.expiring_soon_days, config.time_zone),
                      tier=_current_tier(session, config, customer.profile_ids))


def _expiring(session: Session, customer: ledger.Customer, now: dt.datetime, days: int, zone: str) -> list[ExpiringOut]:
    """Points that expire within ``days``, summed per local expiry date."""
    rows = session.execute(
        select(PointsLot.expires_at, PointsLot.remaining)
        .join(PointsAccount, PointsAccount.id == PointsLot.account_id)
        .where(PointsAccount.tenant_id == customer.tenant_id, PointsAccount.profile_id.in_(customer.profile_ids),
               PointsLot.remaining > 0, PointsLot.expires_at > now,
               PointsLot.expires_at <= now + dt.timedelta(days=days))).all()
    per_day: dict[dt.date, int] = {}
    for expires_at, remaining in rows:
        assert expires_at is not None
        day = (expires_at - dt.timedelta(microseconds=1)).astimezone(ZoneInfo(zone)).date()  # last valid day
        per_day[day] = per_day.get(day, 0) + remaining
    return [ExpiringOut(date=d, points=p) for d, p in sorted(per_day.items())]


def _current_tier(session: Session, config: programme.ProgrammeConfig, ids: Sequence[int]) -> CurrentTier | None:
    row = tiers.current(session, ids)
    tier = config.tier(row.tier_code) if row else None
    if row is None or tier is None:
        return None
    return CurrentTier(code=tier.code, name=tier.name, points_multiplier=str(tier.points_multiplier),
                       member_price=tier.member_price, since=row.created_at, manual_until=row.manual_until,
                       downgrade_due_at=row.downgrade_due_at)


def history_query(tenant_id: int, profile_ids: Sequence[int]) -> Select[PointsEntry, PointsOperation, int]:
    return (select(PointsEntry, PointsOperation, PointsAccount.profile_id)
            .join(PointsOperation, PointsOperation.id == PointsEntry.operation_id)
            .join(PointsAccount, PointsAccount.id == PointsEntry.account_id)
            .where(PointsAccount.tenant_id == tenant_id, PointsAccount.profile_id.in_(profile_ids))
            .order_by(PointsEntry.id.desc()))


def history(session: Session, tenant_id: int, profile_id: int, *, limit: int,
            offset: int) -> tuple[list[EntryOut], int]:
    """The customer's ledger entries, newest first."""
    customer = ledger.customer_of(session, tenant_id, profile_id)
    query = history_query(tenant_id, customer.profile_ids)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    items = [EntryOut(id=e.id, operation_id=o.id, kind=e.kind, operation_kind=o.kind, amount=e.amount, lot_id=e.lot_id,
                      profile_id=p, idempotency_key=o.idempotency_key, order_no=o.order_no, reason=o.reason,
                      created_at=e.created_at)
             for e, o, p in session.execute(query.limit(limit).offset(offset))]
    return items, total


def tier_history(session: Session, tenant_id: int, profile_id: int) -> Sequence[TierAssignment]:
    customer = ledger.customer_of(session, tenant_id, profile_id)
    return session.scalars(select(TierAssignment).where(TierAssignment.profile_id.in_(customer.profile_ids))
                           .order_by(TierAssignment.created_at.desc(), TierAssignment.id.desc())).all()
