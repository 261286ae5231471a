"""Tables of paid membership (付费会员, Costco-style): plans, memberships and their terms, the reward.

- A *plan* is what is sold: fee, term, grace period, benefits, refund and merge policy, and the SKU
  of the catalogue product that sells it (plans are bought through orders).
- A *membership* is one unbroken chain of terms of one person: a join, then renewals (and upgrades)
  without a lapse between them. Renewing after the grace period is a new join, so a new membership;
  the join date of a membership is its cohort for the renewal rate.
- A *period* is one term (or the rest of a term after an upgrade): local dates in the merchant's
  zone, ``[starts_on, ends_on)`` then grace until ``grace_until``. It stays attributed to the base
  profile that bought it, like orders and points, so an unmerge splits memberships back exactly.
- *Reward accruals* are the eligible spend of each order (signed: refunds subtract), hung on the
  period that was running when the order was placed; the reward of a membership year is paid out as
  a *certificate* at renewal.
- Every state change is an *action* (join, renew, upgrade, refund, lapse, merge …) with what it
  did; API writes are idempotent on the action's key.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from lianjie.db import Base, BigId, UTCDateTime, tenant_fk, utcnow


class RefundAfter(StrEnum):
    """What a refund gives back once the full-refund window has passed."""

    PRORATED = "prorated"  # the unused days' share of what was paid
    NONE = "none"


class MergePolicy(StrEnum):
    """What happens when two customers who both hold a live membership become one."""

    EXTEND = "extend"  # keep the higher plan's membership, extended by the other's remaining days
    KEEP = "keep"  # keep the higher plan's membership as it is; the other's remaining days lapse


class PeriodKind(StrEnum):
    JOIN = "join"
    RENEW = "renew"
    UPGRADE = "upgrade"


class PeriodStatus(StrEnum):
    ACTIVE = "active"  # paid for and not closed (it may have started, be in grace, or start later)
    GRACE = "grace"  # past its end, not renewed yet, inside the grace period (set by the lapse job)
    RENEWED = "renewed"  # a renewal follows it
    LAPSED = "lapsed"  # grace passed without a renewal
    REFUNDED = "refunded"
    UPGRADED = "upgraded"  # replaced mid-term by a higher plan
    MERGED = "merged"  # absorbed by another membership of the same (merged) customer


LIVE = (PeriodStatus.ACTIVE.value, PeriodStatus.GRACE.value, PeriodStatus.RENEWED.value)


class CertificateStatus(StrEnum):
    ISSUED = "issued"
    REDEEMED = "redeemed"
    VOID = "void"


def _in(values: type[StrEnum]) -> str:
    return ", ".join(f"'{v.value}'" for v in values)


class MembershipPlan(Base):
    __tablename__ = "membership_plans"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        UniqueConstraint("tenant_id", "sku"),
        CheckConstraint("fee_fen >= 0 AND reward_cap_fen >= 0", name="money_not_negative"),
        CheckConstraint("term_months > 0 AND grace_days >= 0", name="term"),
        CheckConstraint("reward_bp >= 0 AND reward_bp <= 10000", name="reward_bp"),
        CheckConstraint(f"refund_after IN ({_in(RefundAfter)})", name="refund_after"),
        CheckConstraint(f"merge_policy IN ({_in(MergePolicy)})", name="merge_policy"),
        CheckConstraint("status IN ('active', 'retired')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    sku: Mapped[str] = mapped_column(String(64))
    fee_fen: Mapped[int] = mapped_column(BigInteger)
    term_months: Mapped[int] = mapped_column(Integer)
    grace_days: Mapped[int] = mapped_column(Integer)
    reward_bp: Mapped[int] = mapped_column(Integer, default=0)  # basis points of eligible spend: 200 = 2 %
    reward_cap_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # per membership year
    member_price: Mapped[bool] = mapped_column(Boolean, default=False)
    points_multiplier: Mapped[str] = mapped_column(String(12), default="1")  # a decimal, e.g. "1.5"
    refund_full_days: Mapped[int | None] = mapped_column(Integer, default=None)  # None: always in full
    refund_after: Mapped[str] = mapped_column(String(16), default=RefundAfter.PRORATED.value)
    rank: Mapped[int] = mapped_column(Integer, default=0)
    merge_policy: Mapped[str] = mapped_column(String(16), default=MergePolicy.EXTEND.value)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (Index("ix_memberships_profile", "tenant_id", "profile_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    profile_id: Mapped[int] = mapped_column(BigId, ForeignKey("profiles.id"))
    plan_id: Mapped[int] = mapped_column(BigId, ForeignKey("membership_plans.id"))  # the current plan
    joined_on: Mapped[dt.date] = mapped_column(Date)
    anchor_day: Mapped[int] = mapped_column(Integer)  # day of month terms end on (31: the month's last day)
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class MembershipPeriod(Base):
    """One term. ``fee_fen`` is what is recognised as revenue over it: ``charged_fen`` (paid for it) plus
    ``carried_fen`` (the unrecognised rest of the term an upgrade replaced)."""

    __tablename__ = "membership_periods"
    __table_args__ = (
        UniqueConstraint("tenant_id", "source_key"),
        UniqueConstraint("membership_id", "seq"),  # two renewals racing for the same place: one fails
        Index("ix_membership_periods_profile", "tenant_id", "profile_id"),
        Index("ix_membership_periods_ends", "tenant_id", "ends_on"),
        CheckConstraint(f"kind IN ({_in(PeriodKind)})", name="kind"),
        CheckConstraint(f"status IN ({_in(PeriodStatus)})", name="status"),
        CheckConstraint("starts_on < ends_on AND ends_on <= grace_until", name="dates"),
        CheckConstraint("charged_fen >= 0 AND carried_fen >= 0 AND refunded_fen >= 0 AND fee_fen = "
                        "charged_fen + carried_fen", name="money"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    membership_id: Mapped[int] = mapped_column(BigId, ForeignKey("memberships.id"))
    profile_id: Mapped[int] = mapped_column(BigId, ForeignKey("profiles.id"))
    plan_id: Mapped[int] = mapped_column(BigId, ForeignKey("membership_plans.id"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    previous_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("membership_periods.id"), default=None)
    starts_on: Mapped[dt.date] = mapped_column(Date)
    ends_on: Mapped[dt.date] = mapped_column(Date)
    grace_until: Mapped[dt.date] = mapped_column(Date)
    fee_fen: Mapped[int] = mapped_column(BigInteger)
    charged_fen: Mapped[int] = mapped_column(BigInteger)
    carried_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    payment: Mapped[str] = mapped_column(String(16))  # order, manual, auto_charge
    order_no: Mapped[str | None] = mapped_column(String(64), default=None)
    source_key: Mapped[str] = mapped_column(String(200))  # what created it, unique: order:<no>:<line>, ...
    status: Mapped[str] = mapped_column(String(16), default=PeriodStatus.ACTIVE.value)
    closed_on: Mapped[dt.date | None] = mapped_column(Date, default=None)  # refunded, upgraded or merged on
    extension_days: Mapped[int] = mapped_column(Integer, default=0)  # added by a merge, included in ends_on
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RewardAccrual(Base):
    """Eligible spend of one order (positive) or one refund (negative) in a membership period."""

    __tablename__ = "membership_reward_accruals"
    __table_args__ = (
        UniqueConstraint("tenant_id", "source_key"),
        Index("ix_membership_reward_accruals_period", "period_id"),
        Index("ix_membership_reward_accruals_order", "tenant_id", "order_no"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    period_id: Mapped[int] = mapped_column(BigId, ForeignKey("membership_periods.id"))
    profile_id: Mapped[int] = mapped_column(BigId, ForeignKey("profiles.id"))
    order_no: Mapped[str] = mapped_column(String(64))
    source_key: Mapped[str] = mapped_column(String(200))
    eligible_fen: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RewardCertificate(Base):
    """A membership year's reward, paid out at renewal; ``period_id`` is the year's last period and
    ``issued_in_id`` the renewal that paid it out (refunding that renewal takes the reward back)."""

    __tablename__ = "membership_certificates"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        UniqueConstraint("tenant_id", "period_id"),
        Index("ix_membership_certificates_profile", "tenant_id", "profile_id"),
        CheckConstraint(f"status IN ({_in(CertificateStatus)})", name="status"),
        CheckConstraint("amount_fen > 0 AND clawback_owed_fen >= 0 AND clawback_owed_fen <= amount_fen",
                        name="money"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    code: Mapped[str] = mapped_column(String(32))
    membership_id: Mapped[int] = mapped_column(BigId, ForeignKey("memberships.id"))
    period_id: Mapped[int] = mapped_column(BigId, ForeignKey("membership_periods.id"))
    issued_in_id: Mapped[int] = mapped_column(BigId, ForeignKey("membership_periods.id"))
    profile_id: Mapped[int] = mapped_column(BigId, ForeignKey("profiles.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=CertificateStatus.ISSUED.value)
    issued_on: Mapped[dt.date] = mapped_column(Date)
    redeemed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    redeemed_order_no: Mapped[str | None] = mapped_column(String(64), default=None)
    clawback_owed_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # redeemed, then its renewal refunded
    void_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class MembershipAction(Base):
    """One change of a membership, as asked and as done; an API write's idempotency key is unique."""

    __tablename__ = "membership_actions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index("ix_membership_actions_membership", "membership_id", "id"),
        Index("ix_membership_actions_merge", "tenant_id", "merge_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    membership_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("memberships.id"), default=None)
    period_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("membership_periods.id"), default=None)
    kind: Mapped[str] = mapped_column(String(20))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    outcome: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    merge_id: Mapped[int | None] = mapped_column(BigId, default=None)
    operator: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
