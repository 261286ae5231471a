"""Tables of the loyalty domain: the programme, points accounts, lots, the ledger, and tiers.

How the points ledger hangs together:

- An *account* belongs to one base profile (like events and orders, see identity/models.py), so a
  OneID merge moves nothing and an unmerge splits exactly; a customer's balance is the sum over the
  accounts of every profile merged into it.
- Each credit is a *lot*: ``amount`` credited, ``remaining`` unspent, spendable from ``available_at``
  (the pending period) until ``expires_at``.
- Every change is an append-only *entry*. An entry that touches a lot names it, so
  ``lot.remaining == sum(entries of that lot)``; an entry without a lot is a debt (a negative
  balance left by reversing points already spent) or its repayment. ``account.balance`` is a cached
  ``sum(entries of the account)`` kept in the same transaction, and it is the row that is locked.
- Every write is an *operation* with the client's idempotency key, unique per merchant: a repeat
  returns the stored result and applies nothing.

Operations, lots and entries carry no foreign keys (migration 0013): only the ledger writes them, always
naming the account it has just locked and the operation and lot it has just written in the same
transaction, and nothing deletes an account, a profile or a merchant. On PostgreSQL their nine checks
were about a third of a till's ledger call. The accounts keep theirs (to the merchant and the
profile), and tests/loyalty/helpers.check_invariants looks for orphans after every ledger test.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from lianjie.db import Base, BigId, SettingsDocument, UTCDateTime, tenant_fk, utcnow


class OperationKind(StrEnum):
    EARN = "earn"  # points for an event (sign-up, review …) or given by a rule
    ORDER = "order"  # points an order earned
    REVERSE = "reverse"  # a refund taking back an order's points
    SPEND = "spend"  # spent at once
    HOLD = "hold"  # spent, pending the till's confirm or cancel
    ADJUST = "adjust"  # an operator's correction, with reason
    EXPIRE = "expire"  # the expiry job


class HoldStatus(StrEnum):
    HELD = "held"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


class EntryKind(StrEnum):
    CREDIT = "credit"  # a new lot
    DEBIT = "debit"  # spending or taking points back from a lot
    RELEASE = "release"  # a cancelled hold giving points back to its lots
    EXPIRE = "expire"
    DEBT = "debt"  # taken back after it was spent: the account goes below zero
    REPAY = "repay"  # a new lot paying a debt off (a pair: -n on the lot, +n on the debt)


class LoyaltyProgramme(SettingsDocument, Base):
    """A merchant's points programme: earning rules, expiry, overdraw policy and tiers as one document."""

    __tablename__ = "loyalty_programmes"


class ProgrammeVersion(Base):
    """Every saved programme document, numbered per merchant from 1: what was saved, by whom, how.

    The merchant's current programme is its newest version (also kept in ``loyalty_programmes``,
    the row the ledger reads); a rollback saves an older version's document as a new one, so the
    history only grows.
    """

    __tablename__ = "loyalty_programme_versions"
    __table_args__ = (UniqueConstraint("tenant_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    version: Mapped[int] = mapped_column(BigInteger)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    change: Mapped[str] = mapped_column(String(16))  # replace (PUT, CLI), patch, rollback, migrated
    rolled_back_to: Mapped[int | None] = mapped_column(BigInteger, default=None)  # the version copied
    saved_by: Mapped[str] = mapped_column(String(120))  # the audit actor: key:<id>, cli:<user>, system
    saved_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PointsAccount(Base):
    __tablename__ = "points_accounts"
    __table_args__ = (UniqueConstraint("tenant_id", "profile_id"), CheckConstraint("debt >= 0", name="debt"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    profile_id: Mapped[int] = mapped_column(BigId, ForeignKey("profiles.id"))
    balance: Mapped[int] = mapped_column(BigInteger, default=0)  # sum of its entries
    debt: Mapped[int] = mapped_column(BigInteger, default=0)  # minus the sum of its entries without a lot
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PointsOperation(Base):
    """One idempotent write, as the client asked for it and as it turned out."""

    __tablename__ = "points_operations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index("ix_points_operations_profile", "profile_id", "created_at"),
        # Most operations have no order: a partial index skips them (and their index upkeep).
        Index("ix_points_operations_order", "tenant_id", "order_no", postgresql_where=text("order_no IS NOT NULL"),
              sqlite_where=text("order_no IS NOT NULL")),
        CheckConstraint("hold_status IS NULL OR hold_status IN ('held', 'confirmed', 'cancelled')",
                        name="hold_status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigId)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    # The base profile the operation is attributed to (the one whose account got a new lot).
    profile_id: Mapped[int | None] = mapped_column(BigId, default=None)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    points: Mapped[int] = mapped_column(BigInteger, default=0)  # net change of the balance
    spend_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # qualifying spend, for tiers
    order_no: Mapped[str | None] = mapped_column(String(64), default=None)
    reason: Mapped[str | None] = mapped_column(String(200), default=None)
    operator: Mapped[str | None] = mapped_column(String(100), default=None)
    # What the policy decided when points to take back were already spent, e.g. {"debt": 40}.
    outcome: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    hold_status: Mapped[str | None] = mapped_column(String(16), default=None)
    hold_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PointsLot(Base):
    __tablename__ = "points_lots"
    __table_args__ = (
        Index("ix_points_lots_account", "account_id", "expires_at"),
        Index("ix_points_lots_expiry", "tenant_id", "expires_at"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_in_range"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigId)
    account_id: Mapped[int] = mapped_column(BigId)
    operation_id: Mapped[int] = mapped_column(BigId)
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    available_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PointsEntry(Base):
    """One append-only change of one account (and of one lot, unless it is a debt entry)."""

    __tablename__ = "points_entries"
    __table_args__ = (
        Index("ix_points_entries_account", "account_id", "id"),
        Index("ix_points_entries_operation", "operation_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigId)
    account_id: Mapped[int] = mapped_column(BigId)
    operation_id: Mapped[int] = mapped_column(BigId)
    lot_id: Mapped[int | None] = mapped_column(BigId, default=None)
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class TierAssignment(Base):
    """One change of a customer's tier; the newest of a customer's profiles' rows is the current tier.

    Rows stay with the profile that was the customer's root when they were written, so after an
    unmerge each side finds its own history again.
    """

    __tablename__ = "tier_assignments"
    __table_args__ = (Index("ix_tier_assignments_profile", "profile_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    profile_id: Mapped[int] = mapped_column(BigId, ForeignKey("profiles.id"))
    tier_code: Mapped[str] = mapped_column(String(40))
    previous_code: Mapped[str | None] = mapped_column(String(40), default=None)
    reason: Mapped[str] = mapped_column(String(20))  # qualified, downgraded, manual, merged, unmerged, ...
    detail: Mapped[str | None] = mapped_column(String(200), default=None)
    operator: Mapped[str | None] = mapped_column(String(100), default=None)
    manual_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    downgrade_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
