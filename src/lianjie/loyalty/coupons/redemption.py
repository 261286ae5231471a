"""Validating a coupon for a till's basket, redeeming it for an order, restoring it on a full refund,
voiding it.

Validation never writes: it answers whether the coupon applies, how much comes off and on which
lines, or every reason why not (a machine code and a message in English and Chinese).

A coupon is redeemed for an order in one of two ways:

- the till calls ``POST /coupons/redeem`` with the number of a *stored* order of the merchant and the
  basket (404 ``order_not_found`` otherwise: lianjie does not make up an order from a redemption,
  whose amounts it could not know, and an order sent later under that number would have to agree with
  it). The redemption is for the order's buyer: a bound coupon of another customer is refused (409
  ``coupon_other_customer``, also for a guest order), and so is a ``profile_id`` that is not the
  order's buyer (409 ``order_other_customer``); without one the order's buyer is assumed. The usual
  till sends the order with the coupon in its discounts, which redeems it (below); a redeem call for
  that order afterwards answers the stored redemption. The coupon must apply, and a conditional
  UPDATE (``… WHERE status = 'issued'``) lets exactly one of any number of concurrent redeemers
  through; the others get 409 ``coupon_already_redeemed``. Redeeming an unbound (printed) code
  claims it for the buyer, which counts towards the template's per-customer limit: it takes the
  template's lock and counts again first, as issuing and claiming do, so racing redemptions of
  different codes by one customer stop at the limit (409 ``coupon_limit_reached``). Repeating the
  call for the same code and order number returns the stored redemption (idempotent);
- an order arrives through ``POST /api/v1/orders`` with a discount ``{"kind": "coupon", "code": X}``
  (commerce publishes ``OrderCompleted`` with the codes): the coupon is redeemed for that order with
  the discount the order states. The till already gave that discount, so the basket rules are not
  checked again (the order's amounts are after the discount); only the coupon itself must be usable
  by that customer at the order's time. If it is not (unknown code, used by another order, void,
  expired, someone else's, paused), the order is still stored as the fact it is and the problem is
  recorded as a *conflict* for an operator to review (``GET /coupons/conflicts``).

When the order is refunded *in full* (its status becomes ``refunded``), the coupon returns to
``issued`` if it is still within its validity, else it becomes ``expired``; the redemption keeps
the refund number and time. A partial refund leaves the coupon redeemed: the customer kept part of
the goods the coupon was given for.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session, aliased

from lianjie.commerce.events import OrderCompleted, OrderRefunded
from lianjie.commerce.models import Category, Order, OrderStatus, Product
from lianjie.db import UTCDateTime, insert_ignoring_duplicates, utcnow
from lianjie.errors import Conflict, LianjieError, NotFound
from lianjie.identity.models import Profile
from lianjie.loyalty.coupons import issuing, rules
from lianjie.loyalty.coupons.models import (
    Coupon,
    CouponConflict,
    CouponRedemption,
    CouponStatus,
    CouponTemplate,
    TemplateStatus,
)
from lianjie.loyalty.coupons.rules import Reason
from lianjie.loyalty.coupons.schemas import (
    AllocationOut,
    BasketIn,
    GiftOut,
    ReasonOut,
    RedeemIn,
    RedeemOut,
    ValidateOut,
)
from lianjie.pagination import paginate
from lianjie.tenants import audit

COUPONS: Table = Coupon.__table__  # type: ignore[assignment]
CONFLICTS: Table = CouponConflict.__table__  # type: ignore[assignment]
REDEMPTIONS: Table = CouponRedemption.__table__  # type: ignore[assignment]

# What a refusal to redeem answers over HTTP, by its first reason.
_STATUS = {"coupon_not_found": 404, "coupon_already_redeemed": 409, "coupon_void": 409,
           "coupon_other_customer": 409, "coupon_limit_reached": 409, "coupon_paused": 409}


class CouponRefused(LianjieError):
    status_code = 422
    code = "coupon_not_applicable"


@dataclass(slots=True)
class Checked:
    """A coupon looked at for a customer at a time: the coupon, its template, and reasons it cannot be used."""

    coupon: Coupon | None
    template: CouponTemplate | None
    reasons: list[Reason]


# The till's hot path runs these on every validation and redemption: built once, because building a
# statement costs more than running it. ``populate_existing``: a coupon redeemed by a conditional
# UPDATE earlier in the same session is read afresh.
# With the coupon come the customer (root profile) of the profile at the till and of the coupon's owner:
# OneID keeps every merged profile pointing at its root, so equal roots mean the same customer.
_OWNER = aliased(Profile)
_COUPON = (select(Coupon, CouponTemplate, issuing.ROOT.label("root"),
                  select(func.coalesce(_OWNER.merged_into_id, _OWNER.id)).where(_OWNER.id == Coupon.profile_id)
                  .scalar_subquery().label("owner_root"))
           .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
           .where(Coupon.tenant_id == bindparam("t"), Coupon.code == bindparam("code"))
           .execution_options(populate_existing=True))
_REDEEM = (update(COUPONS).where(COUPONS.c.id == bindparam("cid"), COUPONS.c.status == CouponStatus.ISSUED.value)
           .values(status=CouponStatus.REDEEMED.value, order_no=bindparam("o"), discount_fen=bindparam("d"),
                   redeemed_at=bindparam("at", type_=UTCDateTime), profile_id=bindparam("owner"),
                   updated_at=bindparam("now", type_=UTCDateTime)))
_TREE = select(Category.code, Category.parent_code).where(Category.tenant_id == bindparam("t"))
_PRODUCT_CATEGORIES = select(Product.sku, Product.category_code).where(
    Product.tenant_id == bindparam("t"), Product.sku.in_(bindparam("skus", expanding=True)))


def _state(session: Session, tenant_id: int, code: str, profile_id: int | None, at: dt.datetime,
           order_no: str | None = None) -> Checked:
    """Reasons that come from the coupon itself rather than the basket."""
    row = session.execute(_COUPON, {"t": tenant_id, "code": issuing.normalise(code), "p": profile_id}).first()
    if row is None:
        return Checked(None, None, [Reason("coupon_not_found", "no coupon with this code", "券码不存在")])
    coupon, template, root, owner_root = row
    reasons: list[Reason] = []
    if coupon.status == CouponStatus.REDEEMED.value and (order_no is None or coupon.order_no != order_no):
        reasons.append(Reason("coupon_already_redeemed", f"already used for order {coupon.order_no}", "该券已使用"))
    elif coupon.status == CouponStatus.VOID.value:
        reasons.append(Reason("coupon_void", f"voided: {coupon.void_reason}", "该券已作废"))
    elif coupon.status == CouponStatus.EXPIRED.value:
        reasons.append(Reason("coupon_expired", "expired", "该券已过期"))
    elif at < coupon.valid_from or (coupon.valid_until is not None and at >= coupon.valid_until):
        zone = issuing.merchant_zone(session, tenant_id)  # only to tell the times in the merchant's words
        reasons.extend(rules.validity_reasons(coupon.valid_from, coupon.valid_until, at, zone))
    if template.status != TemplateStatus.ACTIVE.value:
        reasons.append(Reason("coupon_paused", f"the coupon's campaign is {template.status}", "该券活动已暂停或结束"))
    if profile_id is not None:
        if root is None:
            raise NotFound(f"no profile {profile_id}", code="profile_not_found", field="profile_id")
        if coupon.profile_id is not None and owner_root != root:
            reasons.append(Reason("coupon_other_customer", "the coupon belongs to another customer",
                                  "该券属于其他会员"))
        elif coupon.profile_id is None and _at_limit(session, tenant_id, template, profile_id):
            reasons.append(_limit_reason(template))
    return Checked(coupon, template, reasons)


def _at_limit(session: Session, tenant_id: int, template: CouponTemplate, profile_id: int) -> bool:
    """Whether claiming one more of ``template`` would take the customer past its per-customer limit."""
    return (template.per_customer_limit is not None
            and issuing.held_by(session, template.id, issuing.customer_ids(session, tenant_id, profile_id))
            >= template.per_customer_limit)


def _limit_reason(template: CouponTemplate) -> Reason:
    return Reason("coupon_limit_reached", f"the customer already has {template.per_customer_limit} of these coupons",
                  "已达每人限用数量")


def _limit_holds(session: Session, tenant_id: int, checked: Checked, profile_id: int | None) -> bool:
    """Just before an unbound coupon is claimed by redeeming it: take the template's lock (as issuing
    and claiming do) and count again, so racing redemptions for one customer pass one at a time. The
    count in :func:`_state` ran unlocked: it answers validation, which writes nothing."""
    coupon, template = checked.coupon, checked.template
    if (coupon is None or template is None or coupon.profile_id is not None or profile_id is None
            or template.per_customer_limit is None):
        return True
    issuing.lock_for_limit(session, template.id)
    return not _at_limit(session, tenant_id, template, profile_id)


def _evaluate(session: Session, tenant_id: int, data: BasketIn) -> tuple[Checked, rules.Evaluation]:
    at = (data.at or utcnow()).astimezone(dt.UTC)
    checked = _state(session, tenant_id, data.code, data.profile_id, at, getattr(data, "order_no", None))
    if checked.template is None:
        return checked, rules.Evaluation(allocations=[0] * len(data.lines))
    template = checked.template
    parents: dict[str, str | None] = {}
    categories: dict[str, str | None] = {}
    if template.scope.get("categories") or template.scope.get("exclude_categories"):
        parents = {code: parent for code, parent in session.execute(_TREE, {"t": tenant_id})}
        missing = [line.sku for line in data.lines if line.category_code is None]
        if missing:
            categories = {sku: category for sku, category in session.execute(
                _PRODUCT_CATEGORIES, {"t": tenant_id, "skus": missing})}
    basket = rules.Basket(rules.lines_of(data.lines, categories), data.store_code,
                          data.channel.value if data.channel else None)
    return checked, rules.evaluate(template, basket, rules.ancestry_from(parents))


def _allocations(data: BasketIn, evaluation: rules.Evaluation) -> list[AllocationOut]:
    return [AllocationOut(line=i, sku=line.sku, discount_fen=fen)
            for i, (line, fen) in enumerate(zip(data.lines, evaluation.allocations, strict=True)) if fen]


def _gift(evaluation: rules.Evaluation) -> GiftOut | None:
    if evaluation.gift_sku is None:
        return None
    return GiftOut(sku=evaluation.gift_sku, quantity=1, in_basket=evaluation.gift_in_basket)


def validate(session: Session, tenant_id: int, data: BasketIn) -> ValidateOut:
    """Can this coupon apply to this basket, for how much, and if not, why not. Writes nothing."""
    checked, evaluation = _evaluate(session, tenant_id, data)
    reasons = [*checked.reasons, *evaluation.reasons]
    applicable = not reasons
    return ValidateOut(code=data.code, template_code=checked.template.code if checked.template else None,
                       applicable=applicable, discount_fen=evaluation.discount_fen if applicable else 0,
                       eligible_fen=evaluation.eligible_fen, allocations=_allocations(data, evaluation) if applicable
                       else [], gift=_gift(evaluation),
                       reasons=[ReasonOut(code=r.code, message=r.message, message_zh=r.message_zh) for r in reasons])


def _refuse(reasons: Sequence[Reason]) -> LianjieError:
    first = reasons[0]
    error = CouponRefused(first.message, code=first.code, field="code",
                          details={"reasons": [{"code": r.code, "message": r.message, "message_zh": r.message_zh}
                                               for r in reasons]})
    error.status_code = _STATUS.get(first.code, 422)
    return error


def _mark_redeemed(session: Session, coupon: Coupon, order_no: str, profile_id: int | None, discount: int,
                   at: dt.datetime) -> int | None:
    """The one conditional UPDATE that lets a single redeemer through; unbound coupons become the buyer's.

    Returns the owner the coupon has now, or None if another redeemer got there first (the session's
    copy of the coupon is then stale: it is read afresh the next time it is looked up).
    """
    owner = coupon.profile_id if coupon.profile_id is not None else profile_id
    done = session.connection().execute(_REDEEM, {"cid": coupon.id, "o": order_no, "d": discount, "at": at,
                                                  "owner": owner, "now": utcnow()})
    if not done.rowcount:
        return None
    return owner if owner is not None else 0


def _stored(session: Session, coupon: Coupon, order_no: str) -> CouponRedemption | None:
    return session.scalar(select(CouponRedemption).where(CouponRedemption.coupon_id == coupon.id,
                                                         CouponRedemption.order_no == order_no))


def _record(session: Session, tenant_id: int, coupon: Coupon, order_no: str, owner: int, discount: int,
            source: str, at: dt.datetime) -> bool:
    """The redemption row; False if this coupon was redeemed for this order before and given back."""
    conn = session.connection()
    claim = insert_ignoring_duplicates(conn, REDEMPTIONS, ("tenant_id", "coupon_id", "order_no"), returning="id")
    inserted = conn.execute(claim, {
        "tenant_id": tenant_id, "coupon_id": coupon.id, "order_no": order_no, "profile_id": owner or None,
        "discount_fen": discount, "source": source, "redeemed_at": at, "restored_at": None, "restored_by": None})
    return inserted.scalar() is not None  # (a skipped INSERT's rowcount is not told alike by every driver)


def _unmark(session: Session, coupon: Coupon) -> None:
    """Undo :func:`_mark_redeemed` (``coupon`` is the copy read before it), so a refusal changes nothing."""
    session.connection().execute(update(COUPONS).where(COUPONS.c.id == coupon.id).values(
        status=coupon.status, order_no=coupon.order_no, discount_fen=coupon.discount_fen,
        redeemed_at=coupon.redeemed_at, profile_id=coupon.profile_id, updated_at=coupon.updated_at))


_ORDER_BUYER = (select(Order.profile_id, func.coalesce(_OWNER.merged_into_id, _OWNER.id))
                .outerjoin(_OWNER, _OWNER.id == Order.profile_id)
                .where(Order.tenant_id == bindparam("t"), Order.order_no == bindparam("o")))


def _for_stored_order(session: Session, tenant_id: int, data: RedeemIn) -> RedeemIn:
    """``data`` for its order's buyer: 404 if the merchant has no such order, 409 if ``data.profile_id``
    is another customer than the order's buyer; without a profile id, the buyer's (None for a guest)."""
    row = session.execute(_ORDER_BUYER, {"t": tenant_id, "o": data.order_no}).first()
    if row is None:
        raise NotFound(f"no order {data.order_no!r}: send the order first (with the coupon in its discounts, "
                       "which redeems it)", code="order_not_found", field="order_no")
    buyer, buyer_root = row
    if data.profile_id is None:
        return data.model_copy(update={"profile_id": buyer})
    root = session.scalar(select(issuing.ROOT), {"t": tenant_id, "p": data.profile_id})
    if root is None:
        raise NotFound(f"no profile {data.profile_id}", code="profile_not_found", field="profile_id")
    if root != buyer_root:
        raise Conflict(f"order {data.order_no!r} is " + ("a guest's" if buyer is None else "another customer's")
                       + f", not profile {data.profile_id}'s", code="order_other_customer", field="order_no")
    return data


def redeem(session: Session, tenant_id: int, data: RedeemIn) -> RedeemOut:
    """Redeem for ``data.order_no``, a stored order (see the module's docstring); the same code and order
    again returns the stored redemption."""
    session.flush()
    data = _for_stored_order(session, tenant_id, data)
    checked, evaluation = _evaluate(session, tenant_id, data)
    coupon = checked.coupon
    if coupon is not None and coupon.status == CouponStatus.REDEEMED.value and coupon.order_no == data.order_no:
        earlier = _stored(session, coupon, data.order_no)  # a retry
        if earlier is not None:
            return _replayed(coupon, earlier, data, evaluation)
    reasons = [*checked.reasons, *evaluation.reasons]
    if data.profile_id is None and coupon is not None and coupon.profile_id is not None:  # a guest's order
        reasons.insert(len(checked.reasons), Reason("coupon_other_customer", "the coupon belongs to a customer "
                                                    "and the order has no buyer", "该券属于会员，订单无会员"))
    if not reasons and not _limit_holds(session, tenant_id, checked, data.profile_id):
        assert checked.template is not None
        reasons = [_limit_reason(checked.template)]
    if reasons:
        raise _refuse(reasons)
    assert coupon is not None
    at = utcnow()
    owner = _mark_redeemed(session, coupon, data.order_no, data.profile_id, evaluation.discount_fen, at)
    if owner is None:
        earlier = _stored(session, coupon, data.order_no)  # a concurrent retry of this very redemption
        if earlier is not None:
            return _replayed(coupon, earlier, data, evaluation)
        raise Conflict("coupon already used for another order", code="coupon_already_redeemed", field="code")
    if not _record(session, tenant_id, coupon, data.order_no, owner, evaluation.discount_fen, "api", at):
        _unmark(session, coupon)
        raise Conflict(f"this coupon was given back when order {data.order_no} was refunded; redeem it with a "
                       "new order number", code="coupon_restored", field="order_no")
    return RedeemOut(code=issuing.shown(coupon.code), order_no=data.order_no, profile_id=owner or None,
                     discount_fen=evaluation.discount_fen, allocations=_allocations(data, evaluation),
                     gift=_gift(evaluation), redeemed_at=at, replayed=False)


def _replayed(coupon: Coupon, earlier: CouponRedemption, data: RedeemIn, evaluation: rules.Evaluation) -> RedeemOut:
    same = earlier.discount_fen == evaluation.discount_fen
    return RedeemOut(code=issuing.shown(coupon.code), order_no=data.order_no, profile_id=coupon.profile_id,
                     discount_fen=earlier.discount_fen, allocations=_allocations(data, evaluation) if same else [],
                     gift=_gift(evaluation), redeemed_at=earlier.redeemed_at, replayed=True)


# ---- reactions to orders and refunds ---------------------------------------------------------------


def _conflict(session: Session, tenant_id: int, order_no: str, code: str, reason: Reason, discount: int) -> None:
    conn = session.connection()
    conn.execute(insert_ignoring_duplicates(conn, CONFLICTS, ("tenant_id", "order_no", "code")),
                 {"tenant_id": tenant_id, "order_no": order_no, "code": code[:64], "reason": reason.code,
                  "message": reason.message[:300], "discount_fen": discount, "created_at": utcnow()})


def redeem_for_order(session: Session, event: OrderCompleted) -> None:
    """Redeem the coupons an incoming order names, or record why one could not be (the order stands)."""
    order = session.get(Order, event.order_id)
    discounts = order.discounts if order is not None else []
    for code in dict.fromkeys(event.coupon_codes):
        discount = sum(d.get("amount_fen", 0) for d in discounts if d.get("kind") == "coupon" and d.get("code") == code)
        checked = _state(session, event.tenant_id, code, event.profile_id, event.ordered_at, event.order_no)
        coupon = checked.coupon
        if coupon is not None and coupon.status == CouponStatus.REDEEMED.value and coupon.order_no == event.order_no:
            continue  # the till redeemed it for this order already
        reasons = checked.reasons
        if not reasons and checked.template and not _limit_holds(session, event.tenant_id, checked, event.profile_id):
            reasons = [_limit_reason(checked.template)]
        if reasons:
            _conflict(session, event.tenant_id, event.order_no, code, reasons[0], discount)
            continue
        assert coupon is not None
        owner = _mark_redeemed(session, coupon, event.order_no, event.profile_id, discount, event.ordered_at)
        if owner is None:
            _conflict(session, event.tenant_id, event.order_no, code,
                      Reason("coupon_already_redeemed", "already used for another order", "该券已使用"), discount)
            continue
        if not _record(session, event.tenant_id, coupon, event.order_no, owner, discount, "order", event.ordered_at):
            _unmark(session, coupon)
            _conflict(session, event.tenant_id, event.order_no, code,
                      Reason("coupon_restored", "given back when this order was refunded", "该券已因退款退回"),
                      discount)


def restore_for_refund(session: Session, event: OrderRefunded) -> None:
    """Give the order's coupons back once the order is refunded in full (see the module's docstring).

    Most refunded orders used no coupon: one index probe finds that, before anything is flushed.
    """
    with session.no_autoflush:
        redemptions = session.scalars(select(CouponRedemption).where(
            CouponRedemption.tenant_id == event.tenant_id, CouponRedemption.order_no == event.order_no,
            CouponRedemption.restored_at.is_(None))).all()
    if not redemptions:
        return
    session.flush()
    status = session.scalar(select(Order.status).where(Order.tenant_id == event.tenant_id,
                                                       Order.order_no == event.order_no))
    if status != OrderStatus.REFUNDED.value:
        return
    for redemption in redemptions:
        redemption.restored_at, redemption.restored_by = event.refunded_at, event.refund_no
        coupon = session.get_one(Coupon, redemption.coupon_id, with_for_update=True)
        if coupon.status != CouponStatus.REDEEMED.value or coupon.order_no != event.order_no:
            continue
        alive = coupon.valid_until is None or event.refunded_at < coupon.valid_until
        coupon.status = (CouponStatus.ISSUED if alive else CouponStatus.EXPIRED).value
        coupon.order_no, coupon.discount_fen, coupon.redeemed_at = None, None, None
    session.flush()


def void(session: Session, tenant_id: int, code: str, reason: str) -> Coupon:
    """Cancel an unused coupon for good (voiding one already voided is a no-op); a used one cannot be."""
    coupon = issuing.find(session, tenant_id, code)
    if coupon.status == CouponStatus.VOID.value:
        return coupon
    done = session.connection().execute(update(COUPONS).where(
        COUPONS.c.id == coupon.id, COUPONS.c.status.in_([CouponStatus.ISSUED.value, CouponStatus.EXPIRED.value]))
        .values(status=CouponStatus.VOID.value, void_reason=reason, updated_at=utcnow()))
    session.refresh(coupon)
    if not done.rowcount:
        raise Conflict(f"coupon already used for order {coupon.order_no}; refund the order to give it back",
                       code="coupon_already_redeemed", field="code")
    audit.record(session, tenant_id, "coupon.void", f"coupon:{coupon.id}", after={"reason": reason})
    return coupon


def conflicts(session: Session, tenant_id: int, *, limit: int, offset: int) -> tuple[Sequence[CouponConflict], int]:
    query = select(CouponConflict).where(CouponConflict.tenant_id == tenant_id).order_by(CouponConflict.id.desc())
    return paginate(session, query, limit, offset)
