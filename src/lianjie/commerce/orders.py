"""Orders: computed totals, idempotent on the order number, each one an event in the buyer's stream.

A till or shop may send an order again (a retry, a re-import): the same content is acknowledged and
nothing changes; other content under a stored order number is a conflict naming the fields, never an
overwrite. Totals are computed here from the lines, never taken from the client (a client total is
only checked). The order-level discount is spread over the lines so that every line knows what was
actually paid for it, which refunds and points need.

The buyer is resolved by OneID: the order is recorded as an ``Order Completed`` track message through
the shared recording pipeline, in the same transaction, and the order keeps the base profile that
message was attributed to. :func:`record_orders` takes a batch, so an import resolves 500 buyers at
once; the HTTP API sends a batch of one, down the same path.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, false, select
from sqlalchemy.orm import Session, selectinload

from lianjie.commerce.events import LineFacts, OrderCompleted
from lianjie.commerce.models import Order, OrderLine, OrderStatus, Product, Refund
from lianjie.commerce.schemas import (
    LineOut,
    OrderIn,
    OrderOut,
    OrderSummaryOut,
    RefundLineOut,
    RefundOut,
)
from lianjie.commerce.store import lock_numbers
from lianjie.config import get_settings
from lianjie.crypto import PiiCipher
from lianjie.db import utcnow
from lianjie.domain_events import publish
from lianjie.errors import Conflict, LianjieError, NotFound, ValidationFailed
from lianjie.identity import service as identity_service
from lianjie.identity.identifiers import normalise
from lianjie.identity.models import Event
from lianjie.identity.recording import Message, Source, store
from lianjie.pagination import paginate
from lianjie.tenants.models import Merchant, Staff, Store

CHUNK = 500
# How far ahead of the server's clock a till's may run; a time beyond it is a wrong date, not skew.
FUTURE_TOLERANCE = dt.timedelta(days=1)


@dataclass(slots=True)
class PlannedLine:
    line_no: int
    sku: str
    product_id: int
    category_code: str | None
    quantity: int
    unit_price_fen: int
    list_fen: int
    discount_fen: int
    allocated_fen: int = 0

    @property
    def paid_fen(self) -> int:
        return self.list_fen - self.discount_fen - self.allocated_fen


@dataclass
class Plan:
    """A new order, checked and computed, before it is written."""

    data: OrderIn
    store_id: int | None
    guide_id: int | None
    currency: str
    buyer_hash: str | None
    lines: list[PlannedLine]
    discounts: list[dict[str, Any]]
    warnings: list[dict[str, str]] = field(default_factory=list)

    @property
    def list_fen(self) -> int:
        return sum(line.list_fen for line in self.lines)

    @property
    def paid_fen(self) -> int:
        return sum(line.paid_fen for line in self.lines)


@dataclass
class Outcome:
    """What became of one order of a batch: 'created', 'unchanged', or 'rejected' with the error."""

    order_no: str
    status: str
    order: Order | None = None
    error: LianjieError | None = None
    warnings: list[dict[str, str]] = field(default_factory=list)


@dataclass
class _Refs:
    """Everything a batch refers to, looked up once."""

    currency: str
    max_order_fen: int
    stores: dict[str, int] = field(default_factory=dict)
    store_codes: dict[int, str] = field(default_factory=dict)
    staff: dict[str, int] = field(default_factory=dict)
    staff_nos: dict[int, str] = field(default_factory=dict)
    products: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    existing: dict[str, Order] = field(default_factory=dict)


def _chunks(values: Sequence[str]) -> list[list[str]]:
    unique = sorted(set(values))
    return [unique[i:i + CHUNK] for i in range(0, len(unique), CHUNK)]


def _load_refs(session: Session, tenant_id: int, orders: Sequence[OrderIn]) -> _Refs:
    merchant = session.get(Merchant, tenant_id)
    if merchant is None:
        raise NotFound(f"no merchant {tenant_id}", code="merchant_not_found")
    refs = _Refs(currency=merchant.currency, max_order_fen=get_settings().max_order_fen)
    for code, store_id in session.execute(select(Store.code, Store.id).where(Store.tenant_id == tenant_id)):
        refs.stores[code] = store_id
        refs.store_codes[store_id] = code
    for part in _chunks([o.guide_staff_no for o in orders if o.guide_staff_no]):
        refs.staff.update(session.execute(select(Staff.staff_no, Staff.id)
                                          .where(Staff.tenant_id == tenant_id, Staff.staff_no.in_(part))).all())
    for part in _chunks([line.sku for o in orders for line in o.lines]):
        for sku, product_id, category in session.execute(
                select(Product.sku, Product.id, Product.category_code)
                .where(Product.tenant_id == tenant_id, Product.sku.in_(part))):
            refs.products[sku] = (product_id, category)
    for part in _chunks([o.order_no for o in orders]):
        for order in session.scalars(select(Order).options(selectinload(Order.lines))
                                     .where(Order.tenant_id == tenant_id, Order.order_no.in_(part))):
            refs.existing[order.order_no] = order
    guide_ids = {o.guide_id for o in refs.existing.values() if o.guide_id is not None}
    if guide_ids:
        refs.staff_nos.update(session.execute(select(Staff.id, Staff.staff_no).where(Staff.id.in_(guide_ids)))
                              .all())
    refs.staff_nos.update({v: k for k, v in refs.staff.items()})
    return refs


# ---- computing an order ---------------------------------------------------------------------------


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` fen in proportion to ``weights``; what rounding leaves goes to the largest line.

    Each share is rounded down; the few fen left over go to the largest line, and only if that line
    cannot take them (its share may never exceed its own amount) to the next largest. Example:
    100 fen over lines of 300, 200 and 100 fen gives 50, 33 and 16, and the 1 fen left goes to the
    first line: 51, 33, 16. ``total`` must not exceed ``sum(weights)``.
    """
    whole = sum(weights)
    if total == 0 or whole == 0:
        return [0] * len(weights)
    shares = [total * w // whole for w in weights]
    left = total - sum(shares)
    for i in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        if left == 0:
            break
        extra = min(left, weights[i] - shares[i])
        shares[i] += extra
        left -= extra
    return shares


def _round_div(amount: int, quantity: int) -> int:
    """``amount / quantity`` rounded half up, for a unit price derived from a line amount."""
    return (2 * amount + quantity) // (2 * quantity)


def _plan_lines(data: OrderIn, refs: _Refs) -> list[PlannedLine]:
    lines, seen = [], set()
    for i, line in enumerate(data.lines):
        where = f"lines[{i}]"
        product = refs.products.get(line.sku)
        if product is None:
            raise ValidationFailed(f"{where}: no product with SKU {line.sku!r} in the catalogue",
                                   field=f"{where}.sku", code="unknown_sku")
        line_no = line.line_no or i + 1
        if line_no in seen:
            raise ValidationFailed(f"{where}: line_no {line_no} appears twice", field=f"{where}.line_no")
        seen.add(line_no)
        list_fen = line.list_fen if line.list_fen is not None else line.quantity * (line.unit_price_fen or 0)
        unit = line.unit_price_fen if line.unit_price_fen is not None else _round_div(list_fen, line.quantity)
        if line.discount_fen > list_fen:
            raise ValidationFailed(f"{where}: discount {line.discount_fen} fen exceeds the line's {list_fen} fen",
                                   field=f"{where}.discount_fen")
        lines.append(PlannedLine(line_no, line.sku, product[0], product[1], line.quantity, unit, list_fen,
                                 line.discount_fen))
    return lines


def plan_order(data: OrderIn, refs: _Refs, cipher: PiiCipher) -> Plan:
    """Check an order's references and compute its amounts; raises a 422 naming the field."""
    if data.store_code is not None and data.store_code not in refs.stores:
        raise ValidationFailed(f"no store with code {data.store_code!r}", field="store_code", code="unknown_store")
    if data.guide_staff_no is not None and data.guide_staff_no not in refs.staff:
        raise ValidationFailed(f"no staff member {data.guide_staff_no!r}", field="guide_staff_no",
                               code="unknown_staff")
    lines = _plan_lines(data, refs)
    discounts = [d.model_dump(mode="json", exclude_none=True) for d in data.discounts]
    order_discount = sum(d.amount_fen for d in data.discounts)
    nets = [line.list_fen - line.discount_fen for line in lines]
    if order_discount > sum(nets):
        raise ValidationFailed(f"order discounts of {order_discount} fen exceed the lines' {sum(nets)} fen",
                               field="discounts")
    for line, share in zip(lines, allocate(order_discount, nets), strict=True):
        line.allocated_fen = share
    plan = Plan(data, refs.stores.get(data.store_code) if data.store_code else None,
                refs.staff.get(data.guide_staff_no) if data.guide_staff_no else None,
                data.currency or refs.currency, buyer_hash(cipher, data), lines, discounts)
    if data.paid_fen is not None and data.paid_fen != plan.paid_fen:
        raise ValidationFailed(f"paid_fen is {data.paid_fen} but the lines and discounts come to {plan.paid_fen}",
                               field="paid_fen", code="total_mismatch")
    plan.warnings = buyer_warnings(data)
    return plan


# Identifiers OneID reads (and may find unusable): a phone number, an e-mail address.
_CHECKED_IDENTIFIERS = {"phone": "a phone number", "email": "an e-mail address"}


def buyer_warnings(data: OrderIn) -> list[dict[str, str]]:
    """Buyer identifiers OneID cannot use, each as ``{"field", "message"}``; the order is stored anyway.

    A till's sale has happened whatever was typed into its phone field, so refusing the order would
    only lose it; but a phone that does not parse identifies nobody, and the buyer then earns no points
    and joins no profile. Saying so lets the till (or the import's warnings file) fix it. The value is
    not repeated in the message: it is personal data.
    """
    found = []
    for kind, what in _CHECKED_IDENTIFIERS.items():
        value = getattr(data.buyer, kind)
        if value is not None and normalise(kind, value) is None:
            found.append({"field": f"buyer.{kind}", "message": f"not {what} that can be read; the order is "
                                                               "stored without it, and it identifies no buyer"})
    return found


def check_not_future(at: dt.datetime, field_name: str, now: dt.datetime) -> None:
    """A sale or refund time more than :data:`FUTURE_TOLERANCE` ahead is a mistake (a wrong year, a
    till's clock), refused before it distorts sales by day, points expiry and the return window."""
    if at > now + FUTURE_TOLERANCE:
        raise ValidationFailed(f"{field_name} {at.isoformat()} is more than a day in the future",
                               field=field_name, code="in_the_future")


def check_new_order(plan: Plan, refs: _Refs, now: dt.datetime) -> None:
    """The rules a new order must meet beyond its shape; a replay of a stored one is not checked again.

    Its currency is the merchant's (amounts in another currency would be summed as if they were
    fen of this one). No amount exceeds ``max_order_fen`` (``LIANJIE_MAX_ORDER_FEN``): a unit price,
    a line or the order's total above it is taken for yuan sent as fen, or a scanner's mistake.
    """
    data = plan.data
    if plan.currency != refs.currency:
        raise ValidationFailed(f"currency {plan.currency} is not the merchant's ({refs.currency})",
                               field="currency", code="wrong_currency")
    check_not_future(data.ordered_at.astimezone(dt.UTC), "ordered_at", now)
    limit = refs.max_order_fen
    for i, line in enumerate(plan.lines):
        for name, amount in (("unit_price_fen", line.unit_price_fen), ("list_fen", line.list_fen)):
            if amount > limit:
                raise ValidationFailed(f"lines[{i}]: {name} {amount} fen exceeds the limit of {limit} fen an "
                                       "order", field=f"lines[{i}].{name}", code="amount_too_large")
    if plan.list_fen > limit:
        raise ValidationFailed(f"the lines come to {plan.list_fen} fen, above the limit of {limit} fen an order",
                               field="lines", code="amount_too_large")


def buyer_hash(cipher: PiiCipher, data: OrderIn) -> str | None:
    """A keyed hash of the buyer identifiers as sent: enough to tell a replay, no PII kept."""
    buyer = data.buyer.model_dump(exclude_none=True)
    return cipher.lookup_hash("order_buyer", json.dumps(buyer, sort_keys=True)) if buyer else None


# ---- replays --------------------------------------------------------------------------------------


def _line_tuple(line: PlannedLine | OrderLine) -> dict[str, Any]:
    return {"line_no": line.line_no, "sku": line.sku, "quantity": line.quantity,
            "unit_price_fen": line.unit_price_fen, "list_fen": line.list_fen, "discount_fen": line.discount_fen}


def _snapshot(order: Order | Plan, refs: _Refs) -> dict[str, Any]:
    if isinstance(order, Plan):
        data = order.data
        head = {"ordered_at": data.ordered_at.astimezone(dt.UTC), "store_code": data.store_code,
                "channel": data.channel.value, "guide_staff_no": data.guide_staff_no,
                "payment_method": data.payment_method, "currency": order.currency, "buyer": order.buyer_hash,
                "discounts": order.discounts}
    else:
        head = {"ordered_at": order.ordered_at, "store_code": refs.store_codes.get(order.store_id or 0),
                "channel": order.channel, "guide_staff_no": refs.staff_nos.get(order.guide_id or 0),
                "payment_method": order.payment_method, "currency": order.currency, "buyer": order.buyer_hash,
                "discounts": order.discounts}
    head["lines"] = [_line_tuple(line) for line in order.lines]
    return head


def differences(stored: dict[str, Any], sent: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Fields of a replay that differ from what is stored, lines compared one by one."""
    diffs: dict[str, dict[str, str]] = {}
    for key, value in sent.items():
        old = stored.get(key)
        if key == "lines" and isinstance(value, list) and isinstance(old, list) and len(value) == len(old):
            for i, (was, now) in enumerate(zip(old, value, strict=True)):
                diffs.update({f"lines[{i}].{k}": {"stored": str(was.get(k)), "sent": str(v)}
                              for k, v in now.items() if was.get(k) != v})
        elif old != value:
            shown = ("(hidden)", "(hidden)") if key == "buyer" else (str(old), str(value))
            diffs[key] = {"stored": shown[0], "sent": shown[1]}
    return diffs


def _replay(stored: Order | Plan, plan: Plan, refs: _Refs) -> None:
    diffs = differences(_snapshot(stored, refs), _snapshot(plan, refs))
    if diffs:
        raise Conflict(f"order {plan.data.order_no!r} already exists with other values: "
                       f"{', '.join(diffs)}", code="order_exists", field="order_no", details=diffs)


# ---- recording ------------------------------------------------------------------------------------


def _yuan(fen: int) -> float:
    return round(fen / 100, 2)


def _buyer_context(data: OrderIn) -> dict[str, Any]:
    """Buyer identifiers where OneID looks for them: ``context.traits`` and ``context.externalIds``."""
    buyer = data.buyer
    traits = {k: v for k, v in buyer.model_dump(include={"member_no", "phone", "email", "wechat_unionid",
                                                          "wecom_external_userid"}).items() if v}
    context: dict[str, Any] = {}
    if traits:
        context["traits"] = traits
    if buyer.wechat_openid:
        context["externalIds"] = [{"type": "wechat_openid", "id": buyer.wechat_openid,
                                   "wechat_appid": buyer.wechat_appid, "collection": "users"}]
    if buyer.device_id:
        context["device"] = {"id": buyer.device_id}
    return context


def order_message(plan: Plan) -> Message:
    """The ``Order Completed`` track message (Segment e-commerce spec) for a new order."""
    data = plan.data
    at = data.ordered_at.astimezone(dt.UTC)
    discount = plan.list_fen - plan.paid_fen
    raw: dict[str, Any] = {
        "type": "track", "event": "Order Completed", "messageId": f"order:{data.order_no}",
        "timestamp": at.isoformat(), "context": _buyer_context(data),
        "properties": {"order_id": data.order_no, "total": _yuan(plan.paid_fen), "revenue": _yuan(plan.paid_fen),
                       "discount": _yuan(discount), "currency": plan.currency, "store_code": data.store_code,
                       "channel": data.channel.value, "guide_staff_no": data.guide_staff_no,
                       "coupon": ",".join(d["code"] for d in plan.discounts if d["kind"] == "coupon") or None,
                       "products": [{"product_id": line.sku, "sku": line.sku, "category": line.category_code,
                                     "quantity": line.quantity, "price": _yuan(line.unit_price_fen),
                                     "paid": _yuan(line.paid_fen), "position": line.line_no}
                                    for line in plan.lines]},
    }
    if data.buyer.user_id:
        raw["userId"] = data.buyer.user_id
    if data.buyer.anonymous_id:
        raw["anonymousId"] = data.buyer.anonymous_id
    return Message(raw, "track", raw["messageId"], data.buyer.user_id, data.buyer.anonymous_id, at, at, None)


def attributed_profiles(session: Session, tenant_id: int, cipher: PiiCipher, source: str,
                        messages: list[Message]) -> dict[str, int | None]:
    """Record messages through OneID and return each one's base profile.

    A message already stored (its messageId was sent before by another path) keeps the profile it
    was attributed to then.
    """
    if not messages:
        return {}
    result = store(session, cipher, Source(tenant_id, source), messages, utcnow())
    profiles = dict(result.profiles)
    missing = [m.message_id for m in messages if m.message_id not in profiles]
    for part in _chunks(missing):
        profiles.update(session.execute(select(Event.message_id, Event.profile_id)
                                        .where(Event.tenant_id == tenant_id, Event.message_id.in_(part))).all())
    return profiles


def _new_order(tenant_id: int, plan: Plan, profile_id: int | None, source: str) -> Order:
    data = plan.data
    order = Order(tenant_id=tenant_id, order_no=data.order_no, ordered_at=data.ordered_at.astimezone(dt.UTC),
                  store_id=plan.store_id,
                  channel=data.channel.value, guide_id=plan.guide_id, payment_method=data.payment_method,
                  currency=plan.currency, profile_id=profile_id, buyer_hash=plan.buyer_hash,
                  discounts=plan.discounts, list_fen=plan.list_fen, discount_fen=plan.list_fen - plan.paid_fen,
                  paid_fen=plan.paid_fen, refunded_fen=0, status=OrderStatus.COMPLETED.value, source=source)
    order.lines = [OrderLine(tenant_id=tenant_id, line_no=line.line_no, sku=line.sku, product_id=line.product_id,
                             category_code=line.category_code, quantity=line.quantity,
                             unit_price_fen=line.unit_price_fen, list_fen=line.list_fen,
                             discount_fen=line.discount_fen, allocated_fen=line.allocated_fen,
                             paid_fen=line.paid_fen, refunded_quantity=0, refunded_fen=0)
                   for line in plan.lines]
    return order


def completed_event(order: Order) -> OrderCompleted:
    return OrderCompleted(
        tenant_id=order.tenant_id, order_id=order.id, order_no=order.order_no, profile_id=order.profile_id,
        store_id=order.store_id, channel=order.channel, paid_fen=order.paid_fen, ordered_at=order.ordered_at,
        lines=tuple(LineFacts(line.line_no, line.sku, line.category_code, line.quantity, line.paid_fen)
                    for line in order.lines),
        coupon_codes=tuple(d["code"] for d in order.discounts if d.get("kind") == "coupon" and d.get("code")))


def record_orders(session: Session, cipher: PiiCipher, tenant_id: int, orders: Sequence[OrderIn], *,
                  source: str = "api") -> list[Outcome]:
    """Store a batch of orders; each outcome says created, unchanged (a replay) or rejected (and why).

    A rejected order changes nothing; the others are stored, their buyers resolved in one pass, and
    ``OrderCompleted`` published once for each new order after the rows are flushed.
    """
    lock_numbers(session, tenant_id, "order", [o.order_no for o in orders])  # retries wait, then find it stored
    refs = _load_refs(session, tenant_id, orders)
    outcomes: list[Outcome] = []
    planned: dict[str, Plan] = {}
    now = utcnow()
    for data in orders:
        try:
            plan = plan_order(data, refs, cipher)
            earlier: Order | Plan | None = refs.existing.get(data.order_no) or planned.get(data.order_no)
            if earlier is not None:
                _replay(earlier, plan, refs)
                stored = earlier if isinstance(earlier, Order) else None
                outcomes.append(Outcome(data.order_no, "unchanged", stored, warnings=plan.warnings))
                continue
            check_new_order(plan, refs, now)
        except LianjieError as exc:
            outcomes.append(Outcome(data.order_no, "rejected", error=exc))
            continue
        planned[data.order_no] = plan
        outcomes.append(Outcome(data.order_no, "created", warnings=plan.warnings))
    profiles = attributed_profiles(session, tenant_id, cipher, source,
                                   [order_message(plan) for plan in planned.values()])
    new = {no: _new_order(tenant_id, plan, profiles.get(f"order:{no}"), source) for no, plan in planned.items()}
    session.add_all(new.values())
    session.flush()
    for outcome in outcomes:
        if outcome.order is None and outcome.status != "rejected":
            outcome.order = new[outcome.order_no]
    for order in new.values():
        publish(session, completed_event(order))
    return outcomes


def record_one(session: Session, cipher: PiiCipher, tenant_id: int, data: OrderIn, *,
               source: str = "api") -> Outcome:
    """One order, 'created' or 'unchanged' with its warnings; raises what made it unacceptable."""
    outcome = record_orders(session, cipher, tenant_id, [data], source=source)[0]
    if outcome.error is not None:
        raise outcome.error
    assert outcome.order is not None
    return outcome


def record_order(session: Session, cipher: PiiCipher, tenant_id: int, data: OrderIn, *,
                 source: str = "api") -> tuple[Order, bool]:
    """One order; returns ``(order, created)`` or raises what made it unacceptable."""
    outcome = record_one(session, cipher, tenant_id, data, source=source)
    assert outcome.order is not None
    return outcome.order, outcome.status == "created"


# ---- reading --------------------------------------------------------------------------------------


def get_order(session: Session, tenant_id: int, order_no: str) -> Order:
    order = session.scalar(select(Order).options(selectinload(Order.lines))
                           .where(Order.tenant_id == tenant_id, Order.order_no == order_no))
    if order is None:
        raise NotFound(f"no order {order_no!r}", code="order_not_found", field="order_no")
    return order


def list_orders(session: Session, tenant_id: int, *, profile_id: int | None = None, store_code: str | None = None,
                channel: str | None = None, status: str | None = None, since: dt.datetime | None = None,
                until: dt.datetime | None = None, limit: int = 100,
                offset: int = 0) -> tuple[Sequence[Order], int]:
    """Orders, newest first; ``profile_id`` means the whole customer (every profile merged with it)."""
    query: Select[Any] = select(Order).where(Order.tenant_id == tenant_id)
    if profile_id is not None:
        query = query.where(Order.profile_id.in_(profiles_of_customer(session, tenant_id, profile_id)))
    if store_code is not None:
        store = session.scalar(select(Store.id).where(Store.tenant_id == tenant_id, Store.code == store_code))
        query = query.where(Order.store_id == store if store is not None else false())  # unknown: nothing
    if channel is not None:
        query = query.where(Order.channel == channel)
    if status is not None:
        query = query.where(Order.status == status)
    if since is not None:
        query = query.where(Order.ordered_at >= since)
    if until is not None:
        query = query.where(Order.ordered_at < until)
    return paginate(session, query.order_by(Order.ordered_at.desc(), Order.id.desc()), limit, offset)


def _codes(session: Session, orders: Sequence[Order]) -> tuple[dict[int, str], dict[int, str]]:
    store_ids = {o.store_id for o in orders if o.store_id is not None}
    guide_ids = {o.guide_id for o in orders if o.guide_id is not None}
    stores = dict(session.execute(select(Store.id, Store.code).where(Store.id.in_(store_ids))).all()) \
        if store_ids else {}
    guides = dict(session.execute(select(Staff.id, Staff.staff_no).where(Staff.id.in_(guide_ids))).all()) \
        if guide_ids else {}
    return stores, guides


def summaries(session: Session, orders: Sequence[Order]) -> list[OrderSummaryOut]:
    stores, guides = _codes(session, orders)
    return [OrderSummaryOut(
        order_no=o.order_no, ordered_at=o.ordered_at, store_code=stores.get(o.store_id or 0), channel=o.channel,
        guide_staff_no=guides.get(o.guide_id or 0), payment_method=o.payment_method, currency=o.currency,
        profile_id=o.profile_id, list_fen=o.list_fen, discount_fen=o.discount_fen, paid_fen=o.paid_fen,
        refunded_fen=o.refunded_fen, status=o.status) for o in orders]


def order_out(session: Session, order: Order) -> OrderOut:
    """An order with its lines and refunds, oldest refund first."""
    refunds = session.scalars(select(Refund).options(selectinload(Refund.lines))
                              .where(Refund.tenant_id == order.tenant_id, Refund.order_id == order.id)
                              .order_by(Refund.refunded_at, Refund.id)).all()
    summary = summaries(session, [order])[0]
    return OrderOut(**summary.model_dump(), discounts=order.discounts,
                    lines=[LineOut.model_validate(line) for line in order.lines],
                    refunds=[RefundOut(refund_no=r.refund_no, order_no=order.order_no, refunded_at=r.refunded_at,
                                       amount_fen=r.amount_fen, reason=r.reason,
                                       lines=[RefundLineOut.model_validate(x) for x in r.lines]) for r in refunds])


def profiles_of_customer(session: Session, tenant_id: int, profile_id: int) -> list[int]:
    """Every base profile of the customer ``profile_id`` belongs to."""
    root = identity_service.root_of(session, tenant_id, profile_id)
    return [p.id for p in identity_service.members(session, tenant_id, root)]

