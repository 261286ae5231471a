"""Loyalty's reactions to other domains' events: orders earn points and redeem the coupons they name,
refunds take back the points their lines earned and (in full) give coupons back, merges and unmerges re-evaluate tiers;
orders with a plan's SKU buy paid memberships, the rest accrues their reward, refunds refund them,
and merges apply the membership merge policy (split back on unmerge). Coupons need nothing on a
merge: they stay with their base profile and are read per customer.
Installed by :func:`lianjie.wiring.install`."""

from __future__ import annotations

from sqlalchemy.orm import Session

from lianjie.commerce.events import OrderCompleted, OrderRefunded
from lianjie.domain_events import subscribe
from lianjie.identity.events import MergeUndone, ProfilesMerged
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
    subscribe(OrderRefunded, on_order_refunded)
    subscribe(ProfilesMerged, on_profiles_merged)
    subscribe(MergeUndone, on_merge_undone)
    subscribe(OrderCompleted, lifecycle.on_order_completed)
    subscribe(OrderRefunded, refunds.on_order_refunded)
    subscribe(ProfilesMerged, on_membership_merge)
    subscribe(MergeUndone, on_membership_unmerge)
