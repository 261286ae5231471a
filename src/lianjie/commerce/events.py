"""Domain events commerce publishes, for loyalty (points, tiers) and later campaigns to react to.

They are published inside the transaction that stores the order or refund, once per order number
and once per refund number (a replayed request publishes nothing), after the rows are flushed.
Amounts are in fen and are what the customer actually paid, after discounts and coupons.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LineFacts:
    """One order line as loyalty sees it: what was bought, how many, for how much (after discounts)."""

    line_no: int
    sku: str
    category_code: str | None
    quantity: int
    paid_fen: int


@dataclass(frozen=True, slots=True)
class OrderCompleted:
    """A new order was stored. ``profile_id`` is the buyer's base profile; None for a guest."""

    tenant_id: int
    order_id: int
    order_no: str
    profile_id: int | None
    store_id: int | None
    channel: str
    paid_fen: int
    ordered_at: dt.datetime
    lines: tuple[LineFacts, ...]
    coupon_codes: tuple[str, ...] = ()  # codes of the order's ``{"kind": "coupon"}`` discounts, as sent


@dataclass(frozen=True, slots=True)
class OrderRefunded:
    """A new refund was stored against an order; ``lines`` hold the refunded quantities and amounts.

    Loyalty takes back what the refunded units of each line earned. ``refunded_fen`` is this refund's
    amount and ``order_paid_fen`` the order's original paid amount, so a subscriber can also reverse in
    proportion (refunded_fen / order_paid_fen) without reading commerce tables.
    """

    tenant_id: int
    order_id: int
    order_no: str
    refund_id: int
    refund_no: str
    profile_id: int | None
    refunded_fen: int
    order_paid_fen: int
    refunded_at: dt.datetime
    lines: tuple[LineFacts, ...]
