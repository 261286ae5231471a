"""Paid membership KPIs: paid members, fee revenue recognised ratably, and the renewal rate.

- **Paid members** on a day: memberships with a term running or in grace that day (a refunded,
  upgraded-away or merged term counts until the day it was closed).
- **Fee revenue** is recognised ratably by day over each term (terms.recognised), per local month. An
  upgrade carries the old term's unrecognised rest into the new term; a refund closes the term and
  reverses what was not recognised yet, and if more than that was given back, the difference reverses
  recognised revenue in the refund's month. A merged term goes on being recognised as before, since
  its days went on as the extension of the membership it joined.
- **Renewal rate**, the way Costco reports it: of the terms that came due (ended) in a trailing window,
  the share that were renewed within grace. A term is counted once its fate is known: renewed, or its
  grace is over (terms still inside grace are left out, neither renewed nor lost). Terms that never
  came due (refunded, upgraded or merged before their end) are not counted; a renewal that was then
  refunded is not a renewal. Joining again after a lapse is a new membership, not a renewal. Split by
  the due term's plan and by the month the membership joined (its cohort).

These read the operational store and compute in Python: fine for a merchant's memberships (tens of
thousands of terms); the warehouse is the place for more.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.errors import ValidationFailed
from lianjie.loyalty.membership.models import Membership, MembershipPeriod, MembershipPlan, PeriodKind, PeriodStatus
from lianjie.loyalty.membership.schemas import MembersKpi, RenewalCell, RenewalKpi, RevenueMonth
from lianjie.loyalty.membership.terms import add_months, recognised

CLOSED = (PeriodStatus.REFUNDED.value, PeriodStatus.UPGRADED.value, PeriodStatus.MERGED.value)


def _codes(session: Session, tenant_id: int) -> dict[int, str]:
    return dict(session.execute(select(MembershipPlan.id, MembershipPlan.code)
                                .where(MembershipPlan.tenant_id == tenant_id)).all())


def paid_members(session: Session, tenant_id: int, day: dt.date) -> MembersKpi:
    rows = session.scalars(select(MembershipPeriod).where(MembershipPeriod.tenant_id == tenant_id,
                                                          MembershipPeriod.starts_on <= day,
                                                          MembershipPeriod.grace_until > day)).all()
    codes = _codes(session, tenant_id)
    members: dict[int, tuple[str, bool]] = {}
    for p in rows:
        if p.status in CLOSED and (p.closed_on is None or day >= p.closed_on):
            continue
        if p.status == PeriodStatus.RENEWED.value and day >= p.ends_on:
            continue  # its renewal is running
        members[p.membership_id] = (codes[p.plan_id], day >= p.ends_on)
    return MembersKpi(at=day, paid_members=len(members), in_grace=sum(g for _, g in members.values()),
                      by_plan=dict(sorted(Counter(code for code, _ in members.values()).items())))


def _months(first: dt.date, last: dt.date) -> list[dt.date]:
    out, month = [], first.replace(day=1)
    while month <= last:
        out.append(month)
        month = add_months(month, 1)
    return out


def revenue(session: Session, tenant_id: int, first: dt.date, last: dt.date) -> list[RevenueMonth]:
    """Fee revenue recognised in each month from ``first``'s month to ``last``'s (at most 120 months)."""
    months = _months(first, last)
    if not months or len(months) > 120:
        raise ValidationFailed("give 1 to 120 months, the first not after the last", field="from")
    start, end = months[0], add_months(months[-1], 1)
    rows = session.scalars(select(MembershipPeriod).where(MembershipPeriod.tenant_id == tenant_id,
                                                          MembershipPeriod.starts_on < end,
                                                          MembershipPeriod.grace_until >= start)).all()
    codes = _codes(session, tenant_id)
    per: defaultdict[dt.date, Counter[str]] = defaultdict(Counter)
    for p in rows:
        span_end = p.ends_on - dt.timedelta(days=p.extension_days)
        closes = p.status in (PeriodStatus.REFUNDED.value, PeriodStatus.UPGRADED.value) and p.closed_on is not None
        stop = p.closed_on if closes and p.closed_on is not None else span_end
        for month in months:
            after = add_months(month, 1)
            amount = (recognised(p.fee_fen, p.starts_on, span_end, stop, after)
                      - recognised(p.fee_fen, p.starts_on, span_end, stop, month))
            if p.status == PeriodStatus.REFUNDED.value and p.closed_on is not None and month <= p.closed_on < after:
                amount += p.fee_fen - recognised(p.fee_fen, p.starts_on, span_end, stop, p.closed_on) - p.refunded_fen
            per[month][codes[p.plan_id]] += amount
    return [RevenueMonth(month=m.strftime("%Y-%m"), recognised_fen=sum(per[m].values()),
                         by_plan={k: v for k, v in sorted(per[m].items()) if v}) for m in months]


def renewal_rate(session: Session, tenant_id: int, at: dt.date, months: int = 12) -> RenewalKpi:
    """Terms due in the ``months`` before ``at`` (``[at - months, at)``) and the share renewed."""
    if not 1 <= months <= 120:
        raise ValidationFailed("months must be 1 to 120", field="months")
    since = add_months(at, -months)
    due = session.execute(select(MembershipPeriod, Membership.joined_on)
                          .join(Membership, Membership.id == MembershipPeriod.membership_id)
                          .where(MembershipPeriod.tenant_id == tenant_id, MembershipPeriod.ends_on >= since,
                                 MembershipPeriod.ends_on < at, MembershipPeriod.status.not_in(CLOSED))).all()
    renewals = set(session.scalars(select(MembershipPeriod.previous_id).where(
        MembershipPeriod.tenant_id == tenant_id, MembershipPeriod.kind == PeriodKind.RENEW.value,
        MembershipPeriod.status != PeriodStatus.REFUNDED.value, MembershipPeriod.previous_id.is_not(None))))
    codes = _codes(session, tenant_id)
    cells: dict[str, defaultdict[str, list[int]]] = {"plan": defaultdict(lambda: [0, 0]),
                                                     "month": defaultdict(lambda: [0, 0])}
    total = [0, 0]
    for p, joined_on in due:
        renewed = p.id in renewals
        if not renewed and at < p.grace_until:
            continue  # still inside grace: not decided yet
        for counts in (total, cells["plan"][codes[p.plan_id]], cells["month"][joined_on.strftime("%Y-%m")]):
            counts[0] += 1
            counts[1] += renewed
    return RenewalKpi(window_from=since, window_to=at, due=total[0], renewed=total[1], rate=_rate(*total),
                      by_plan={k: _cell(v) for k, v in sorted(cells["plan"].items())},
                      by_join_month={k: _cell(v) for k, v in sorted(cells["month"].items())})


def _rate(due: int, renewed: int) -> float | None:
    return round(renewed / due, 4) if due else None


def _cell(counts: list[int]) -> RenewalCell:
    return RenewalCell(due=counts[0], renewed=counts[1], rate=_rate(*counts))
