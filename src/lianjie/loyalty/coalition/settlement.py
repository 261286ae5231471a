"""Settlement statements: per period, per party, what was issued, redeemed, expired and bought, what
each party owes and is due in fen, netting to zero across the coalition.

The parties are the member merchants and the coalition's operator (CCC to T-Point's partners):

- a member *owes* the issue price of every point it awarded while postpaid, and the price of every
  prepaid block it bought (points awarded from a block were paid for when it was bought);
- a member is *due* the redemption value of every point redeemed at its tills;
- the operator is due what the members owe and owes what they are due, and keeps the breakage
  (points that expired unredeemed cost it nothing), so its ``net_fen`` is minus the members' total
  and the statement nets to exactly zero.

Rounding: prices are in milli-fen per point and each entry keeps the price it was written at, so a
statement line's amount is ``sum(points x price)`` over its entries, rounded once to whole fen, half
up. Example: 333 points issued at 10.5 fen = 3,496.5 fen, billed 3,497 fen; the operator's line is
derived from the rounded member lines, so the rounding never leaves a fen unaccounted for.

A period is a calendar month in the coalition's time zone, ``[first day 00:00, next first day 00:00)``,
over entries' *booking* dates (see points._booking_date). Closing stores the statement and its lines
and moves ``closed_through`` to the period's end: from then on no entry can be booked inside it, so
:func:`recompute` over the ledger gives the stored lines again, byte for byte, for ever. Closing
again returns the stored statement and writes nothing. Periods may be closed in any order, but only
once they are over; closing first expires the lots that lapsed inside the period, so its breakage is
on it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass, fields
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from lianjie.db import utcnow
from lianjie.errors import ValidationFailed
from lianjie.loyalty.coalition import points as coalition_points
from lianjie.loyalty.coalition.models import (
    Coalition,
    CoalitionEntry,
    CoalitionMember,
    CoalitionPeriod,
    CoalitionStatementLine,
    EntryKind,
    Funding,
    Party,
)
from lianjie.loyalty.coalition.schemas import LineOut, StatementOut
from lianjie.loyalty.coalition.setup import Access, slugs
from lianjie.tenants import audit

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(slots=True)
class Line:
    party: str
    tenant_id: int
    points_issued: int = 0
    points_issued_postpaid: int = 0
    points_redeemed: int = 0
    points_expired: int = 0
    points_purchased: int = 0
    issue_owed_fen: int = 0
    purchase_owed_fen: int = 0
    redemption_due_fen: int = 0
    owed_fen: int = 0
    due_fen: int = 0
    net_fen: int = 0


FIGURES = [f.name for f in fields(Line) if f.name not in ("party", "tenant_id")]


def bounds(coalition: Coalition, period: str) -> tuple[dt.datetime, dt.datetime]:
    """A month ``YYYY-MM`` in the coalition's zone, as UTC ``[start, end)``."""
    match = _PERIOD.match(period)
    if match is None or not 1 <= int(match[2]) <= 12 or not 2000 <= int(match[1]) <= 2999:
        raise ValidationFailed(f"period {period!r} is not a month written YYYY-MM", field="period",
                               code="invalid_period")
    year, month = int(match[1]), int(match[2])
    zone = ZoneInfo(coalition.timezone)
    start = dt.datetime(year, month, 1, tzinfo=zone)
    end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def _fen(milli: int) -> int:
    """Milli-fen to whole fen, half up (amounts here are never negative)."""
    return (milli + 500) // 1000


def compute(session: Session, coalition: Coalition, start: dt.datetime, end: dt.datetime) -> list[Line]:
    """The statement's lines from the ledger: one aggregate over the entries booked in the period.

    Members appear if they belonged to the coalition at any time in the period or have entries in
    it; the operator's line comes last."""
    totals = session.execute(
        select(CoalitionEntry.tenant_id, CoalitionEntry.kind, CoalitionEntry.funding,
               func.sum(CoalitionEntry.points), func.sum(CoalitionEntry.points * CoalitionEntry.price_milli_fen))
        .where(CoalitionEntry.coalition_id == coalition.id, CoalitionEntry.booked_at >= start,
               CoalitionEntry.booked_at < end)
        .group_by(CoalitionEntry.tenant_id, CoalitionEntry.kind, CoalitionEntry.funding)).all()
    members = set(session.scalars(select(CoalitionMember.tenant_id).where(
        CoalitionMember.coalition_id == coalition.id, CoalitionMember.joined_at < end,
        or_(CoalitionMember.left_at.is_(None), CoalitionMember.left_at >= start))))
    lines = {t: Line(Party.MERCHANT.value, t) for t in sorted(members | {row[0] for row in totals})}
    milli: dict[tuple[int, str], int] = {}
    for tenant_id, kind, funding, points, value in totals:
        line, points, value = lines[tenant_id], int(points), int(value)
        if kind == EntryKind.ISSUE.value:
            line.points_issued += points
            if funding == Funding.POSTPAID.value:
                line.points_issued_postpaid += points
                milli[(tenant_id, "issue")] = milli.get((tenant_id, "issue"), 0) + value
        elif kind == EntryKind.REDEEM.value:
            line.points_redeemed -= points
            milli[(tenant_id, "redeem")] = milli.get((tenant_id, "redeem"), 0) - value
        elif kind == EntryKind.EXPIRE.value:
            line.points_expired -= points
        else:
            line.points_purchased += points
            milli[(tenant_id, "purchase")] = milli.get((tenant_id, "purchase"), 0) + value
    operator = Line(Party.OPERATOR.value, coalition.operator_tenant_id)
    for tenant_id, line in lines.items():
        line.issue_owed_fen = _fen(milli.get((tenant_id, "issue"), 0))
        line.purchase_owed_fen = _fen(milli.get((tenant_id, "purchase"), 0))
        line.redemption_due_fen = _fen(milli.get((tenant_id, "redeem"), 0))
        line.owed_fen = line.issue_owed_fen + line.purchase_owed_fen
        line.due_fen = line.redemption_due_fen
        line.net_fen = line.due_fen - line.owed_fen
        operator.points_expired += line.points_expired  # the breakage the operator keeps
        operator.owed_fen += line.due_fen
        operator.due_fen += line.owed_fen
    operator.net_fen = operator.due_fen - operator.owed_fen
    result = [*lines.values(), operator]
    if sum(line.net_fen for line in result) != 0:  # pragma: no cover - arithmetic guarantees it
        raise AssertionError(f"statement of coalition {coalition.code} does not net to zero")
    return result


def _stored_lines(session: Session, period_id: int) -> list[Line]:
    rows = session.scalars(select(CoalitionStatementLine).where(CoalitionStatementLine.period_id == period_id)
                           .order_by(CoalitionStatementLine.party, CoalitionStatementLine.tenant_id)).all()
    merchants = [Line(r.party, r.tenant_id, **{f: getattr(r, f) for f in FIGURES}) for r in rows]
    return sorted(merchants, key=lambda line: (line.party == Party.OPERATOR.value, line.tenant_id))


def _period(session: Session, coalition_id: int, start: dt.datetime) -> CoalitionPeriod | None:
    return session.scalar(select(CoalitionPeriod).where(CoalitionPeriod.coalition_id == coalition_id,
                                                        CoalitionPeriod.starts_at == start))


def close(session: Session, coalition: Coalition, period: str, *, closed_by: str,
          now: dt.datetime | None = None) -> tuple[CoalitionPeriod, bool]:
    """Close a finished period: expire what lapsed in it, store its statement, move ``closed_through``.

    Returns (period, closed now). A period closed before is returned as stored, nothing written."""
    now = now or utcnow()
    start, end = bounds(coalition, period)
    # Exclusive: writers hold the row shared while they book (points._booking_date).
    session.scalar(select(Coalition.id).where(Coalition.id == coalition.id).with_for_update(key_share=True))
    existing = _period(session, coalition.id, start)
    if existing is not None:
        return existing, False
    if end > now:
        raise ValidationFailed(f"period {period} ends at {end.isoformat()}; close it once it is over",
                               field="period", code="period_not_over")
    last_moment = end - dt.timedelta(microseconds=1)
    while coalition_points.expire_due(session, coalition, last_moment):
        pass  # the CLI expires in batches of their own transactions first; whatever is left goes here
    lines = compute(session, coalition, start, end)
    row = CoalitionPeriod(coalition_id=coalition.id, label=period, starts_at=start, ends_at=end, closed_at=now,
                          closed_by=closed_by[:100])
    session.add(row)
    session.flush()
    session.add_all([CoalitionStatementLine(period_id=row.id, coalition_id=coalition.id, **asdict(line))
                     for line in lines])
    if coalition.closed_through is None or coalition.closed_through < end:
        coalition.closed_through = end
    session.flush()
    members = [line for line in lines if line.party == Party.MERCHANT.value]
    audit.record(session, coalition.operator_tenant_id, "coalition_period.close",
                 f"coalition:{coalition.code}:{period}",
                 after={"period": period, "closed_by": row.closed_by, "members": len(members),
                        "points_issued": sum(line.points_issued for line in members),
                        "points_redeemed": sum(line.points_redeemed for line in members)})
    return row, True


def recompute(session: Session, coalition: Coalition, period: str) -> list[str]:
    """Differences between a closed statement and the ledger today; empty means reproduced exactly."""
    start, end = bounds(coalition, period)
    stored = _period(session, coalition.id, start)
    if stored is None:
        raise ValidationFailed(f"period {period} is not closed", field="period", code="period_open")
    again = {(line.party, line.tenant_id): line for line in compute(session, coalition, start, end)}
    kept = {(line.party, line.tenant_id): line for line in _stored_lines(session, stored.id)}
    problems = [f"{party} {tenant}: only in {'ledger' if (party, tenant) in again else 'statement'}"
                for party, tenant in sorted(set(again) ^ set(kept))]
    for key in sorted(set(again) & set(kept)):
        for name in FIGURES:
            if getattr(again[key], name) != getattr(kept[key], name):
                problems.append(f"{key[0]} {key[1]} {name}: stored {getattr(kept[key], name)}, "
                                f"ledger {getattr(again[key], name)}")
    return problems


def statement(session: Session, acc: Access, period: str) -> StatementOut:
    """The stored statement of a closed period, or a preview of an open one; a member sees its own
    line, the operator every line (its own last)."""
    coalition = acc.coalition
    start, end = bounds(coalition, period)
    stored = _period(session, coalition.id, start)
    lines = _stored_lines(session, stored.id) if stored else compute(session, coalition, start, end)
    names = slugs(session, {line.tenant_id for line in lines})
    shown = lines if acc.operator else [line for line in lines if line.party == Party.MERCHANT.value
                                                                  and line.tenant_id == acc.tenant_id]
    return StatementOut(
        coalition=coalition.code, period=period, starts_at=start, ends_at=end,
        status="closed" if stored else "open", closed_at=stored.closed_at if stored else None,
        currency=coalition.currency,
        lines=[LineOut(party=line.party, merchant=names[line.tenant_id], **{f: getattr(line, f) for f in FIGURES})
               for line in shown],
        net_total_fen=sum(line.net_fen for line in lines))
