"""Tables of coupons: templates (the rule and its stock), issued coupons, issuances, redemptions and
order conflicts.

- A *template* is what the merchant designs (¥20 off, 85% of the price, 每满200减30, a free gift), with
  its scope, validity, per-customer limit and stock. ``issued`` counts the coupons drawn from the
  stock; a conditional UPDATE (``issued + n <= stock``) draws them, so stock is never oversold.
- A *coupon* is one issued instance with its own code. Like points accounts it stays attributed to
  the *base profile* it was issued to (or none: a printed code nobody has claimed yet), so a OneID
  merge moves nothing and an unmerge splits back exactly; a customer's coupons are those of every
  profile merged into it. ``status`` moves issued → redeemed (→ issued again when the order is
  refunded in full) or issued → void; a coupon past ``valid_until`` reads as expired.
- An *issue* is one idempotent issuing request (to a customer, a list, or a batch of codes).
- A *redemption* binds a coupon to an order (unique per coupon and order number), and records its
  restoration when that order is refunded in full.
- A *conflict* is an order that arrived from a till naming a coupon that could not be redeemed for it
  (unknown, used by another order, void, expired, someone else's): the order is a fact and is kept;
  the problem waits here for review.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lianjie.db import Base, BigId, UTCDateTime, tenant_fk, utcnow


class CouponKind(StrEnum):
    AMOUNT_OFF = "amount_off"  # ¥X off the in-scope amount
    PERCENT_OFF = "percent_off"  # N% off the in-scope amount (85折 = 15% off), optionally capped
    SPEND_SAVE = "spend_save"  # 满减: spend X, save Y (optionally 每满: Y for every X)
    FREE_GIFT = "free_gift"  # one unit of a SKU for free


class TemplateStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"  # no new issues, issued coupons cannot be redeemed
    ENDED = "ended"  # as paused, for good


class CouponStatus(StrEnum):
    ISSUED = "issued"
    REDEEMED = "redeemed"
    EXPIRED = "expired"  # stored only when a refund restores a coupon past its validity; else derived
    VOID = "void"


class IssueKind(StrEnum):
    PROFILES = "profiles"  # to one customer or a list of customers
    CODES = "codes"  # unbound codes for print or QR


def _in(values: type[StrEnum]) -> str:
    return ", ".join(f"'{v.value}'" for v in values)


class CouponTemplate(Base):
    __tablename__ = "coupon_templates"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        CheckConstraint(f"kind IN ({_in(CouponKind)})", name="kind"),
        CheckConstraint(f"status IN ({_in(TemplateStatus)})", name="status"),
        CheckConstraint("issued >= 0 AND (stock IS NULL OR issued <= stock)", name="stock_not_oversold"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    amount_off_fen: Mapped[int | None] = mapped_column(BigInteger, default=None)
    percent_off: Mapped[int | None] = mapped_column(Integer, default=None)
    max_discount_fen: Mapped[int | None] = mapped_column(BigInteger, default=None)
    threshold_fen: Mapped[int | None] = mapped_column(BigInteger, default=None)
    per_threshold: Mapped[bool] = mapped_column(default=False)  # 每满 X 减 Y
    gift_sku: Mapped[str | None] = mapped_column(String(64), default=None)
    min_spend_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    # {"skus": [...], "exclude_skus": [...], "categories": [...], "exclude_categories": [...],
    #  "stores": [...], "channels": [...]}; an empty list means no restriction.
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    valid_from: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    valid_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    valid_days: Mapped[int | None] = mapped_column(Integer, default=None)
    per_customer_limit: Mapped[int | None] = mapped_column(Integer, default=None)
    stock: Mapped[int | None] = mapped_column(BigInteger, default=None)
    issued: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default=TemplateStatus.ACTIVE.value)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CouponIssue(Base):
    """One issuing request under the client's idempotency key (unique per merchant)."""

    __tablename__ = "coupon_issues"
    __table_args__ = (UniqueConstraint("tenant_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    idempotency_key: Mapped[str] = mapped_column(String(128))
    template_id: Mapped[int] = mapped_column(BigId, ForeignKey("coupon_templates.id"))
    kind: Mapped[str] = mapped_column(String(16))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Customers refused (per-customer limit) as {"profile_id", "code"}; what was issued is in coupons.
    refused: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Coupon(Base):
    __tablename__ = "coupons"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        Index("ix_coupons_profile", "profile_id", "template_id"),
        Index("ix_coupons_issue", "issue_id"),
        CheckConstraint(f"status IN ({_in(CouponStatus)})", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    template_id: Mapped[int] = mapped_column(BigId, ForeignKey("coupon_templates.id"))
    issue_id: Mapped[int] = mapped_column(BigId, ForeignKey("coupon_issues.id"))
    code: Mapped[str] = mapped_column(String(32))
    profile_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("profiles.id"), default=None)
    status: Mapped[str] = mapped_column(String(16), default=CouponStatus.ISSUED.value)
    valid_from: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    order_no: Mapped[str | None] = mapped_column(String(64), default=None)  # the redeeming order, while redeemed
    discount_fen: Mapped[int | None] = mapped_column(BigInteger, default=None)
    redeemed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    void_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CouponRedemption(Base):
    """A coupon used for an order; ``restored_at`` is set when a full refund gave the coupon back."""

    __tablename__ = "coupon_redemptions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "coupon_id", "order_no"),
        Index("ix_coupon_redemptions_order", "tenant_id", "order_no"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    coupon_id: Mapped[int] = mapped_column(BigId, ForeignKey("coupons.id"))
    order_no: Mapped[str] = mapped_column(String(64))
    profile_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("profiles.id"), default=None)
    discount_fen: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16))  # "api" (the till asked) or "order" (an order named it)
    redeemed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    restored_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    restored_by: Mapped[str | None] = mapped_column(String(64), default=None)  # the refund number


class CouponConflict(Base):
    """An order named a coupon that could not be redeemed for it; kept for an operator to review."""

    __tablename__ = "coupon_conflicts"
    __table_args__ = (UniqueConstraint("tenant_id", "order_no", "code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    order_no: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(String(300))
    discount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
