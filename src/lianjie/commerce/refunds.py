"""Refunds: idempotent on the refund number, never more than is left to refund, exact to the fen.

A refund names lines and quantities, or nothing (the whole rest of the order). What a line gives back
defaults to its paid amount pro rata, computed on the running total so that refunding a line in
parts adds up exactly to what was paid: a line of 3 units paid 1000 fen refunds 333, then 333, then
the last unit gets the 334 that are left. A refund that asks for more than is left is refused as a
whole (422 ``refund_exceeds_order``) and changes nothing.

Each new refund is an ``Order Refunded`` event on the buyer's own base profile (the one the order was
attributed to) and publishes :class:`~lianjie.commerce.events.OrderRefunded` for loyalty.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from lianjie.commerce.events import LineFacts, OrderRefunded
from lianjie.commerce.models import Order, OrderLine, OrderStatus, Refund, RefundLine
from lianjie.commerce.orders import check_not_future, differences
from lianjie.commerce.schemas import RefundIn
from lianjie.commerce.store import lock_numbers
from lianjie.crypto import PiiCipher
from lianjie.db import is_sqlite, utcnow
from lianjie.domain_events import publish
from lianjie.errors import Conflict, LianjieError, NotFound, ValidationFailed
from lianjie.identity.config import load_config
from lianjie.identity.identifiers import Ident
from lianjie.identity.models import Identifier
from lianjie.identity.recording import Message, Source, prepare, store_prepared
from lianjie.identity.service import identifier_value

CHUNK = 500


class RefundExceedsOrder(ValidationFailed):
    code = "refund_exceeds_order"


@dataclass
class RefundOutcome:
    refund_no: str
    status: str  # created, unchanged or rejected
    refund: Refund | None = None
    error: LianjieError | None = None


@dataclass
class _Planned:
    order: Order
    data: RefundIn
    request: dict[str, Any]
    lines: list[tuple[OrderLine, int, int]]  # (order line, quantity, amount in fen)
    refunded_at: dt.datetime


def _request(order_no: str, data: RefundIn) -> dict[str, Any]:
    """The request as it is compared on a replay (a default refund time is not part of it)."""
    return {"order_no": order_no, "refunded_at": data.refunded_at.astimezone(dt.UTC).isoformat()
            if data.refunded_at else None, "reason": data.reason,
            "lines": [line.model_dump() for line in data.lines] if data.lines is not None else None}


def default_amount(line: OrderLine, quantity: int) -> int:
    """The line's paid amount for ``quantity`` more units, on the running total (see the module doc)."""
    after = line.refunded_quantity + quantity
    if after == line.quantity:
        return line.paid_fen - line.refunded_fen
    share = line.paid_fen * after // line.quantity - line.paid_fen * line.refunded_quantity // line.quantity
    return max(0, min(share, line.paid_fen - line.refunded_fen))


def _whole_order(order: Order) -> list[tuple[OrderLine, int, int]]:
    rest = [(line, line.quantity - line.refunded_quantity, line.paid_fen - line.refunded_fen)
            for line in order.lines if line.refunded_quantity < line.quantity]
    if not rest:
        raise RefundExceedsOrder(f"order {order.order_no!r} is refunded in full already", field="lines")
    return rest


def _by_lines(order: Order, data: RefundIn) -> list[tuple[OrderLine, int, int]]:
    by_no = {line.line_no: line for line in order.lines}
    chosen: list[tuple[OrderLine, int, int]] = []
    for i, want in enumerate(data.lines or []):
        where = f"lines[{i}]"
        line = by_no.get(want.line_no)
        if line is None:
            raise ValidationFailed(f"{where}: order {order.order_no!r} has no line {want.line_no}",
                                   field=f"{where}.line_no", code="unknown_line")
        if any(c[0] is line for c in chosen):
            raise ValidationFailed(f"{where}: line {want.line_no} appears twice", field=f"{where}.line_no")
        left = line.quantity - line.refunded_quantity
        if want.quantity > left:
            raise RefundExceedsOrder(f"{where}: line {line.line_no} ({line.sku}) has {left} of {line.quantity} "
                                     f"left to refund, {want.quantity} asked", field=f"{where}.quantity")
        money_left = line.paid_fen - line.refunded_fen
        amount = want.amount_fen if want.amount_fen is not None else default_amount(line, want.quantity)
        if amount > money_left:
            raise RefundExceedsOrder(f"{where}: line {line.line_no} ({line.sku}) has {money_left} fen left to "
                                     f"refund, {amount} asked", field=f"{where}.amount_fen")
        chosen.append((line, want.quantity, amount))
    return chosen


def plan_refund(order: Order, data: RefundIn) -> _Planned:
    """Check a new refund against what is left of the order; raises without changing anything."""
    now = utcnow()
    refunded_at = (data.refunded_at or now).astimezone(dt.UTC)
    check_not_future(refunded_at, "refunded_at", now)
    if refunded_at < order.ordered_at:
        raise ValidationFailed("a refund cannot precede its order", field="refunded_at")
    lines = _by_lines(order, data) if data.lines is not None else _whole_order(order)
    return _Planned(order, data, _request(order.order_no, data), lines, refunded_at)


def _apply(tenant_id: int, plan: _Planned, source: str) -> Refund:
    order = plan.order
    for line, quantity, amount in plan.lines:
        line.refunded_quantity += quantity
        line.refunded_fen += amount
    total = sum(amount for _, _, amount in plan.lines)
    order.refunded_fen += total
    done = all(line.refunded_quantity == line.quantity for line in order.lines)
    order.status = (OrderStatus.REFUNDED if done else OrderStatus.PARTIALLY_REFUNDED).value
    refund = Refund(tenant_id=tenant_id, order_id=order.id, refund_no=plan.data.refund_no,
                    refunded_at=plan.refunded_at, amount_fen=total, reason=plan.data.reason, request=plan.request,
                    source=source)
    refund.lines = [RefundLine(tenant_id=tenant_id, order_line_id=line.id, line_no=line.line_no, quantity=quantity,
                               amount_fen=amount) for line, quantity, amount in plan.lines]
    return refund


def _load(session: Session, tenant_id: int, items: Sequence[tuple[str, RefundIn]]
          ) -> tuple[dict[str, Order], dict[str, tuple[Refund, str]]]:
    """The batch's orders, locked, and the refunds already stored under its numbers.

    Two refunds of one order with different numbers must not both read what is left to refund and
    both take it (20 whole-order refunds at once were all accepted on PostgreSQL): each locks the
    order rows (``SELECT … FOR UPDATE``, in id order) before reading their refundable amounts, so the
    second reads what the first left. Two sends of one refund number wait on the number's lock
    (commerce/store.py) and the second finds the first stored. SQLite's write transaction already
    lets one writer in at a time.
    """
    order_nos = sorted({no for no, _ in items})
    refund_nos = sorted({data.refund_no for _, data in items})
    lock_numbers(session, tenant_id, "refund", refund_nos)
    orders: dict[str, Order] = {}
    for start in range(0, len(order_nos), CHUNK):
        # Locked before anything refundable is read: refunds of one order take turns (see _load's doc).
        orders.update((o.order_no, o) for o in session.scalars(
            select(Order).options(selectinload(Order.lines))
            .where(Order.tenant_id == tenant_id, Order.order_no.in_(order_nos[start:start + CHUNK]))
            .order_by(Order.id).with_for_update(of=Order).execution_options(populate_existing=True)))
    existing: dict[str, tuple[Refund, str]] = {}
    for start in range(0, len(refund_nos), CHUNK):
        for refund, order_no in session.execute(
                select(Refund, Order.order_no).join(Order, Order.id == Refund.order_id)
                .where(Refund.tenant_id == tenant_id, Refund.refund_no.in_(refund_nos[start:start + CHUNK]))):
            existing[refund.refund_no] = (refund, order_no)
    return orders, existing


def _replay(stored: dict[str, Any], sent: dict[str, Any], refund_no: str) -> None:
    diffs = differences(stored, sent)
    if diffs:
        raise Conflict(f"refund {refund_no!r} already exists with other values: {', '.join(diffs)}",
                       code="refund_exists", field="refund_no", details=diffs)


def record_refunds(session: Session, cipher: PiiCipher, tenant_id: int, items: Sequence[tuple[str, RefundIn]], *,
                   source: str = "api") -> list[RefundOutcome]:
    """Store a batch of ``(order_no, refund)``; each is created, unchanged (a replay) or rejected.

    Refunds of one order within a batch see each other, in order; a rejected one changes nothing.
    """
    orders, existing = _load(session, tenant_id, items)
    outcomes: list[RefundOutcome] = []
    created: dict[str, _Planned] = {}
    new: dict[str, Refund] = {}
    for order_no, data in items:
        try:
            if data.refund_no in existing:
                refund, stored_order = existing[data.refund_no]
                _replay(refund.request | {"order_no": stored_order}, _request(order_no, data), data.refund_no)
                outcomes.append(RefundOutcome(data.refund_no, "unchanged", refund))
                continue
            if data.refund_no in created:
                _replay(created[data.refund_no].request, _request(order_no, data), data.refund_no)
                outcomes.append(RefundOutcome(data.refund_no, "unchanged", new[data.refund_no]))
                continue
            order = orders.get(order_no)
            if order is None:
                raise NotFound(f"no order {order_no!r}", code="order_not_found", field="order_no")
            plan = plan_refund(order, data)
        except LianjieError as exc:
            outcomes.append(RefundOutcome(data.refund_no, "rejected", error=exc))
            continue
        created[data.refund_no] = plan
        new[data.refund_no] = _apply(tenant_id, plan, source)
        outcomes.append(RefundOutcome(data.refund_no, "created", new[data.refund_no]))
    session.add_all(new.values())
    session.flush()
    _record_events(session, cipher, tenant_id, source, [(created[no], refund) for no, refund in new.items()])
    for no, refund in new.items():
        publish(session, refunded_event(created[no], refund))
    return outcomes


def record_refund(session: Session, cipher: PiiCipher, tenant_id: int, order_no: str, data: RefundIn, *,
                  source: str = "api") -> tuple[Refund, bool]:
    """One refund; returns ``(refund, created)`` or raises what made it unacceptable."""
    outcome = record_refunds(session, cipher, tenant_id, [(order_no, data)], source=source)[0]
    if outcome.error is not None:
        raise outcome.error
    assert outcome.refund is not None
    return outcome.refund, outcome.status == "created"


def refunded_event(plan: _Planned, refund: Refund) -> OrderRefunded:
    order = plan.order
    return OrderRefunded(
        tenant_id=order.tenant_id, order_id=order.id, order_no=order.order_no, refund_id=refund.id,
        refund_no=refund.refund_no, profile_id=order.profile_id, refunded_fen=refund.amount_fen,
        order_paid_fen=order.paid_fen, refunded_at=refund.refunded_at,
        lines=tuple(LineFacts(line.line_no, line.sku, line.category_code, quantity, amount)
                    for line, quantity, amount in plan.lines))


def _refund_message(plan: _Planned, refund: Refund) -> Message:
    at = refund.refunded_at.astimezone(dt.UTC)
    raw: dict[str, Any] = {
        "type": "track", "event": "Order Refunded", "messageId": f"refund:{refund.refund_no}",
        "timestamp": at.isoformat(),
        "properties": {"order_id": plan.order.order_no, "refund_id": refund.refund_no,
                       "total": round(refund.amount_fen / 100, 2), "currency": plan.order.currency,
                       "reason": refund.reason,
                       "products": [{"product_id": line.sku, "sku": line.sku, "quantity": quantity,
                                     "refunded": round(amount / 100, 2)} for line, quantity, amount in plan.lines]},
    }
    return Message(raw, "track", raw["messageId"], None, None, at, at, None)


def _profile_idents(session: Session, cipher: PiiCipher, tenant_id: int, profile_ids: set[int]) -> dict[int, Ident]:
    """For each base profile its strongest identifier: a message carrying it lands on exactly that profile."""
    if not profile_ids:
        return {}
    config = load_config(session, tenant_id)
    best: dict[int, Identifier] = {}
    for row in session.scalars(select(Identifier).where(Identifier.tenant_id == tenant_id,
                                                        Identifier.profile_id.in_(profile_ids))):
        rule = config.types.get(row.type)
        held = best.get(row.profile_id)
        if rule is not None and (held is None or rule.priority > config.types[held.type].priority):
            best[row.profile_id] = row
    return {pid: Ident(row.type, identifier_value(cipher, row), row.value_hash) for pid, row in best.items()}


def _record_events(session: Session, cipher: PiiCipher, tenant_id: int, source: str,
                   refunds: list[tuple[_Planned, Refund]]) -> None:
    """``Order Refunded`` on the order's own base profile (no identifiers are resent with a refund)."""
    if not refunds:
        return
    config = load_config(session, tenant_id)
    idents = _profile_idents(session, cipher, tenant_id,
                             {p.order.profile_id for p, _ in refunds if p.order.profile_id is not None})
    src = Source(tenant_id, source)
    prepared = prepare(cipher, config, src, [_refund_message(p, r) for p, r in refunds], utcnow(),
                       text_times=is_sqlite(session))
    for item, (plan, _) in zip(prepared, refunds, strict=True):
        ident = idents.get(plan.order.profile_id or 0)
        item.idents = [ident] if ident else []
    store_prepared(session, cipher, config, src, prepared)
