"""Loyalty's reactions to other domains' events: orders earn points and redeem the coupons they name,
refunds take back the points their lines earned and (in full) give coupons back, merges and unmerges re-evaluate tiers;
orders with a plan's SKU buy paid memberships, the rest accrues their reward, refunds refund them,
and merges apply the membership merge policy (split back on unmerge). Coupons need nothing on a
merge: they stay with their base profile and are read per customer.
Installed by :func:`lianjie.wiring.install`."""

from __future__ import annotations

import hashlib

from sqlalchemy.orm import Session

from lianjie.commerce.events import OrderCompleted, OrderRefunded
from lianjie.domain_events import subscribe
from lianjie.identity.events import EventsTracked, MergeUndone, ProfilesMerged
from lianjie.identity.service import root_of
from lianjie.loyalty import ledger, programme, tiers
from lianjie.loyalty.coupons import redemption as coupons
from lianjie.loyalty.membership import lifecycle, merging, refunds


def on_order_completed(session: Session, event: OrderCompleted) -> None:
    if event.coupon_codes:
        coupons.redeem_for_order(session, event)
    if event.profile_id is None:
        return  # a guest: nobody to credit
    lines = [(line.sku, line.category_code, line.paid_fen) for line in event.lines]
    ledger.earn_for_order(session, event.tenant_id, event.profile_id, event.order_no, event.paid_fen, lines,
                          event.ordered_at, units=[(line.line_no, line.quantity) for line in event.lines])


def on_order_refunded(session: Session, event: OrderRefunded) -> None:
    ledger.reverse_for_refund(session, event.tenant_id, event.order_no, event.refund_no, event.refunded_fen,
                              event.order_paid_fen, [(line.line_no, line.quantity) for line in event.lines])
    coupons.restore_for_refund(session, event)


# Orders earn through their own path (on_order_completed); a rule of these names would pay twice.
_COMMERCE_EVENTS = frozenset({"Order Completed", "Order Refunded"})


def on_events_tracked(session: Session, event: EventsTracked) -> None:
    """Tracked events earn what the programme's ``events`` rules say, exactly once.

    The idempotency key makes "once" hold across retries and replays: ``track:<messageId>`` for most
    events, ``track-once:<event>:<customer>`` for ``once_per_customer`` events such as ``Signed Up``
    (the customer being the root profile when the event is stored: two profiles that each signed up
    before OneID joined them have each earned). Most tracked events earn nothing, and leave here
    after one dictionary look-up each: this runs inside ingestion's write transaction.
    """
    config = programme.load(session, event.tenant_id)
    rules, once = config.events, config.once_per_customer
    for profile_id, name, message_id in event.items:
        if name not in rules or name in _COMMERCE_EVENTS or rules[name] <= 0:
            continue
        if name in once:
            label = name if len(name) <= 80 else hashlib.sha256(name.encode()).hexdigest()[:32]
            key = f"track-once:{label}:{root_of(session, event.tenant_id, profile_id)}"
        else:
            key = f"track:{message_id}"  # a messageId has at most 100 characters: the key fits its 128
        ledger.earn(session, event.tenant_id, profile_id, key, event=name)


def on_profiles_merged(session: Session, event: ProfilesMerged) -> None:
    config = programme.load(session, event.tenant_id)
    tiers.after_merge(session, config, event.tenant_id, event.survivor_id, event.moved_ids)


def on_merge_undone(session: Session, event: MergeUndone) -> None:
    tiers.after_unmerge(session, programme.load(session, event.tenant_id), event.tenant_id, event.merge_id)


def on_membership_merge(session: Session, event: ProfilesMerged) -> None:
    merging.after_merge(session, event)


def on_membership_unmerge(session: Session, event: MergeUndone) -> None:
    merging.after_unmerge(session, event)


def install() -> None:
    subscribe(OrderCompleted, on_order_completed)
    subscribe(EventsTracked, on_events_tracked)
    subscribe(OrderRefunded, on_order_refunded)
    subscribe(ProfilesMerged, on_profiles_merged)
    subscribe(MergeUndone, on_merge_undone)
    subscribe(OrderCompleted, lifecycle.on_order_completed)
    subscribe(OrderRefunded, refunds.on_order_refunded)
    subscribe(ProfilesMerged, on_membership_merge)
    subscribe(MergeUndone, on_membership_unmerge)
