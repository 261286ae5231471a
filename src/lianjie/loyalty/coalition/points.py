"""Coalition points: earn at one member, redeem at any, prepaid blocks, expiry.

Every write claims its idempotency key first (``ON CONFLICT DO NOTHING`` on coalition, merchant and
key; a retry gets the stored result, the same key for a different request 409), then takes its locks
in one order, so two writers never wait on each other in a circle:

1. the coalition row, shared (``FOR SHARE``): closing a period takes it exclusively, so a write
   either lands before the close (and is on the statement) or after it, when it reads the new
   ``closed_through`` and books itself on the next open period (see :func:`_booking_date`);
2. the member row (``FOR UPDATE``) when a prepaid block changes: two tills of one merchant cannot
   both take the last points of its block;
3. the card and every card merged into it (``FOR UPDATE``, id order): two redemptions cannot both
   spend the same points.

SQLite's write transaction serialises writers on its own; the statements are the same.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import Table, delete, select, update
from sqlalchemy.orm import Session

from lianjie.db import insert_ignoring_duplicates, utcnow
from lianjie.errors import Conflict, LianjieError, ValidationFailed
from lianjie.loyalty.coalition import cards
from lianjie.loyalty.coalition.models import (
    Coalition,
    CoalitionCard,
    CoalitionEntry,
    CoalitionLot,
    CoalitionMember,
    CoalitionOperation,
    EntryKind,
    Funding,
)
from lianjie.loyalty.coalition.setup import Access, active_member

OPERATIONS: Table = CoalitionOperation.__table__  # type: ignore[assignment]
ENTRIES: Table = CoalitionEntry.__table__  # type: ignore[assignment]


class InsufficientPoints(ValidationFailed):
    code = "insufficient_points"


class PrepaidBlockEmpty(Conflict):
    code = "prepaid_block_empty"


@dataclass(slots=True)
class Result:
    operation_id: int
    kind: str
    points: int
    card_no: str | None
    replayed: bool
    booked_at: dt.datetime | None


def _claim(session: Session, acc: Access, key: str, kind: EntryKind, request: dict[str, Any],
           now: dt.datetime) -> tuple[int, bool]:
    conn = session.connection()
    claim = insert_ignoring_duplicates(conn, OPERATIONS, ("coalition_id", "tenant_id", "idempotency_key"),
                                       returning="id")
    new_id = conn.execute(claim, {"coalition_id": acc.coalition.id, "tenant_id": acc.tenant_id,
                                  "idempotency_key": key, "kind": kind.value, "card_id": None, "request": request,
                                  "points": 0, "booked_at": None, "created_at": now}).scalar()
    if new_id is not None:
        return int(new_id), False
    stored = conn.execute(select(OPERATIONS.c.id, OPERATIONS.c.kind, OPERATIONS.c.request).where(
        OPERATIONS.c.coalition_id == acc.coalition.id, OPERATIONS.c.tenant_id == acc.tenant_id,
        OPERATIONS.c.idempotency_key == key)).one()
    if stored.kind != kind.value or stored.request != request:
        raise Conflict(f"idempotency key {key!r} was already used for a different {stored.kind} request "
                       f"({stored.request})", code="idempotency_key_reused", field="idempotency_key")
    return int(stored.id), True


def _refuse(session: Session, operation_id: int, error: Exception) -> NoReturn:
    """Give the claimed key back, so a refused request leaves nothing and a corrected retry may reuse it."""
    session.execute(delete(CoalitionOperation).where(CoalitionOperation.id == operation_id))
    raise error


def _stored(session: Session, operation_id: int) -> Result:
    op = session.get_one(CoalitionOperation, operation_id)
    session.refresh(op)
    card_no = None if op.card_id is None else session.scalar(
        select(CoalitionCard.card_no).where(CoalitionCard.id == op.card_id))
    return Result(op.id, op.kind, op.points, card_no, True, op.booked_at)


def _booking_date(session: Session, coalition_id: int, occurred: dt.datetime) -> dt.datetime:
    """When an entry counts for settlement: when it happened, unless that period is closed already, in
    which case the first moment of the next open period (a statement never changes once closed).
    Example: the November statement was closed at 00:05 on 1 December; an expiry job run on
    3 December for lots that lapsed on 30 November books them on 1 December 00:00 (December's)."""
    return _booked(occurred, _closed_through(session, coalition_id))


def _closed_through(session: Session, coalition_id: int) -> dt.datetime | None:
    return session.scalar(select(Coalition.closed_through).where(Coalition.id == coalition_id)
                          .with_for_update(read=True))


def _booked(occurred: dt.datetime, closed_through: dt.datetime | None) -> dt.datetime:
    return max(occurred, closed_through) if closed_through is not None else occurred


def _lock_member(session: Session, member_id: int) -> CoalitionMember:
    member = session.scalars(select(CoalitionMember).where(CoalitionMember.id == member_id)
                             .with_for_update().execution_options(populate_existing=True)).one()
    return member


def _begin(session: Session, acc: Access, kind: EntryKind, card_no: str, key: str, points: int,
           order_no: str | None, now: dt.datetime) -> Result | tuple[int, CoalitionMember, int, dt.datetime]:
    """The steps an award and a redemption share: claim the key (a replay returns the stored result),
    check the caller may do it with this card, and take the coalition's shared lock. Returns the
    operation, the member, the card (its group's survivor) and the booking date."""
    _check_points(points)
    request = {"card_no": card_no, "points": points, "order_no": order_no}
    op_id, replayed = _claim(session, acc, key, kind, request, now)
    if replayed:
        return _stored(session, op_id)
    try:
        member = active_member(acc, now, issuing=kind == EntryKind.ISSUE)
        root = cards.linked_card(session, acc, card_no)
    except LianjieError as exc:
        _refuse(session, op_id, exc)
    return op_id, member, root, _booking_date(session, acc.coalition.id, now)


def earn(session: Session, acc: Access, card_no: str, key: str, points: int, *, order_no: str | None = None,
         now: dt.datetime | None = None) -> Result:
    """Award points at the caller's merchant: a new lot on the card, priced at the member's issue price.

    A prepaid member draws them from its block; an empty (or too small) block refuses the whole award
    with 409 ``prepaid_block_empty``, never partly and never below zero."""
    now = now or utcnow()
    begun = _begin(session, acc, EntryKind.ISSUE, card_no, key, points, order_no, now)
    if isinstance(begun, Result):
        return begun
    op_id, member, root, booked = begun
    if member.funding == Funding.PREPAID.value:
        member = _lock_member(session, member.id)
        if member.prepaid_balance < points:
            _refuse(session, op_id, PrepaidBlockEmpty(
                f"this merchant's prepaid block has {member.prepaid_balance} points left, {points} asked for; "
                "buy another block", field="points"))
        member.prepaid_balance -= points
    cards.group(session, root, lock=True)
    days = acc.coalition.expiry_days
    lot = CoalitionLot(coalition_id=acc.coalition.id, tenant_id=acc.tenant_id, card_id=root, operation_id=op_id,
                       amount=points, remaining=points, earned_at=now,
                       expires_at=now + dt.timedelta(days=days) if days else None)
    session.add(lot)
    session.flush()
    session.execute(ENTRIES.insert(), [_entry(acc, op_id, EntryKind.ISSUE, points, member.issue_price_milli_fen,
                                              now, booked, card_id=root, lot_id=lot.id, funding=member.funding)])
    return _finish(session, op_id, EntryKind.ISSUE, points, root, booked)


def _entry(acc: Access, op_id: int | None, kind: EntryKind, points: int, price: int, now: dt.datetime,
           booked: dt.datetime, *, card_id: int | None = None, lot_id: int | None = None,
           funding: str | None = None, tenant_id: int | None = None) -> dict[str, Any]:
    return {"coalition_id": acc.coalition.id, "tenant_id": tenant_id or acc.tenant_id, "card_id": card_id,
            "operation_id": op_id, "lot_id": lot_id, "kind": kind.value, "points": points, "price_milli_fen": price,
            "funding": funding, "occurred_at": now, "booked_at": booked}


def _finish(session: Session, op_id: int, kind: EntryKind, points: int, card_id: int | None,
            booked: dt.datetime) -> Result:
    session.execute(update(CoalitionOperation).where(CoalitionOperation.id == op_id).values(
        points=points, card_id=card_id, booked_at=booked))
    session.flush()
    card_no = None if card_id is None else session.scalar(select(CoalitionCard.card_no)
                                                          .where(CoalitionCard.id == card_id))
    return Result(op_id, kind.value, points, card_no, False, booked)


def redeem(session: Session, acc: Access, card_no: str, key: str, points: int, *, order_no: str | None = None,
           now: dt.datetime | None = None) -> Result:
    """Take points at the caller's till, soonest-expiring lots first whoever issued them; the caller
    is due its redemption value per point on the statement."""
    now = now or utcnow()
    begun = _begin(session, acc, EntryKind.REDEEM, card_no, key, points, order_no, now)
    if isinstance(begun, Result):
        return begun
    op_id, member, root, booked = begun
    ids = cards.group(session, root, lock=True)
    lots = cards.live_lots(session, ids, now)
    available = sum(lot.remaining for lot in lots)
    if points > available:
        _refuse(session, op_id, InsufficientPoints(f"{points} points asked for but the card has {available}",
                                                   field="points"))
    rows, left = [], points
    for lot in lots:
        step = min(lot.remaining, left)
        if step <= 0:
            break
        lot.remaining -= step
        left -= step
        rows.append(_entry(acc, op_id, EntryKind.REDEEM, -step, member.redemption_value_milli_fen, now, booked,
                           card_id=lot.card_id, lot_id=lot.id))
    session.flush()
    session.execute(ENTRIES.insert(), rows)
    return _finish(session, op_id, EntryKind.REDEEM, -points, root, booked)


def purchase(session: Session, acc: Access, key: str, points: int, *, now: dt.datetime | None = None) -> Result:
    """A prepaid member buys a block of points at its issue price; billed on this period's statement."""
    now = now or utcnow()
    _check_points(points)
    op_id, replayed = _claim(session, acc, key, EntryKind.PURCHASE, {"points": points}, now)
    if replayed:
        return _stored(session, op_id)
    try:
        member = active_member(acc, now, issuing=True)
    except LianjieError as exc:
        _refuse(session, op_id, exc)
    if member.funding != Funding.PREPAID.value:
        _refuse(session, op_id, Conflict("this merchant is postpaid: its points are billed per period, "
                                         "there is no block to buy", code="not_prepaid", field="points"))
    booked = _booking_date(session, acc.coalition.id, now)
    member = _lock_member(session, member.id)
    member.prepaid_balance += points
    session.execute(ENTRIES.insert(), [_entry(acc, op_id, EntryKind.PURCHASE, points, member.issue_price_milli_fen,
                                              now, booked)])
    return _finish(session, op_id, EntryKind.PURCHASE, points, None, booked)


def expire_due(session: Session, coalition: Coalition, at: dt.datetime, *, limit: int = 500) -> int:
    """Expire up to ``limit`` lots that lapsed by ``at``; returns the points expired (0: nothing left).

    Breakage is attributed to the merchant that issued the lot, dated when the lot lapsed (or the next
    open period, see :func:`_booking_date`). The job calls this in a loop, one transaction a call."""
    due = session.execute(select(CoalitionLot.id, CoalitionLot.card_id).where(
        CoalitionLot.coalition_id == coalition.id, CoalitionLot.remaining > 0, CoalitionLot.expires_at <= at)
        .order_by(CoalitionLot.card_id, CoalitionLot.id).limit(limit)).all()
    if not due:
        return 0
    cards.lock_groups(session, {card_id for _, card_id in due})
    lots = session.scalars(select(CoalitionLot).where(CoalitionLot.id.in_([lot_id for lot_id, _ in due]),
                                                      CoalitionLot.remaining > 0)
                           .execution_options(populate_existing=True)).all()
    acc = Access(coalition, coalition.operator_tenant_id, True, None)
    closed_through = _closed_through(session, coalition.id)
    rows, total = [], 0
    for lot in lots:
        assert lot.expires_at is not None
        booked = _booked(lot.expires_at, closed_through)
        rows.append(_entry(acc, None, EntryKind.EXPIRE, -lot.remaining, 0, lot.expires_at, booked,
                           card_id=lot.card_id, lot_id=lot.id, tenant_id=lot.tenant_id))
        total += lot.remaining
        lot.remaining = 0
    session.flush()
    if rows:
        session.execute(ENTRIES.insert(), rows)
    return total


def _check_points(points: int) -> None:
    if not 0 < points <= 100_000_000:
        raise ValidationFailed("points must be between 1 and 100,000,000", field="points", code="invalid_points")
