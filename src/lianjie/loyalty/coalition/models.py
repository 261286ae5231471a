"""Tables of the coalition programme: the only rows that span merchants, and they say so explicitly.

- A *coalition* is run by an operator (a merchant in lianjie, like CCC runs T-Point) and has one
  points currency. Its *members* are merchants, each with its own terms: the issue price it pays per
  point it awards and the redemption value it is paid per point redeemed at its tills, in milli-fen
  per point (so ¥0.105 a point is 10,500), and a funding mode: ``prepaid`` (it buys blocks of points
  first; earning stops when its block is empty) or ``postpaid`` (billed per period).
- A *card* is one person's coalition account. It is *linked* to that person's base profile at each
  member merchant where the person consented; the card itself carries no merchant (it spans them).
  When a merchant's OneID merges two profiles whose cards differ, the cards merge the same way
  profiles do: ``merged_into_id`` points at the surviving card, nothing moves, and undoing the OneID
  merge resets the pointer (``coalition_card_merges`` records each one).
- Points live in *lots* (issued by one merchant, spent soonest-expiring first) and every change is an
  append-only *entry* carrying the merchant at which it happened: the issuer for ``issue``, the till's
  merchant for ``redeem``, the lot's issuer for ``expire``, the buyer for a prepaid ``purchase``. Each
  entry also carries the price in force when it was written and the date it is *booked* on, so a
  settlement statement is a plain aggregate of entries booked in ``[period start, period end)``.
- A closed period keeps its statement lines; they are never updated.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lianjie.db import Base, BigId, UTCDateTime, tenant_fk, utcnow


class Funding(StrEnum):
    PREPAID = "prepaid"
    POSTPAID = "postpaid"


class Role(StrEnum):
    PARTNER = "partner"  # awards and redeems points
    ISSUER = "issuer"  # only awards points
    REDEEMER = "redeemer"  # only takes points


class EntryKind(StrEnum):
    ISSUE = "issue"
    REDEEM = "redeem"
    EXPIRE = "expire"
    PURCHASE = "purchase"  # a prepaid block bought: no card, points go to the member's block


class Party(StrEnum):
    MERCHANT = "merchant"
    OPERATOR = "operator"


def _in(values: type[StrEnum]) -> str:
    return ", ".join(f"'{v.value}'" for v in values)


def _coalition_fk() -> ForeignKey:
    return ForeignKey("coalitions.id", ondelete="CASCADE")


class Coalition(Base):
    __tablename__ = "coalitions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    operator_tenant_id: Mapped[int] = mapped_column(BigId, tenant_fk())
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    expiry_days: Mapped[int | None] = mapped_column(Integer)  # None: points never expire
    # End of the latest closed period: nothing is booked before it any more.
    closed_through: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CoalitionMember(Base):
    __tablename__ = "coalition_members"
    __table_args__ = (
        UniqueConstraint("coalition_id", "tenant_id"),
        CheckConstraint(f"role IN ({_in(Role)})", name="role"),
        CheckConstraint(f"funding IN ({_in(Funding)})", name="funding"),
        CheckConstraint("prepaid_balance >= 0", name="prepaid_balance"),
        CheckConstraint("issue_price_milli_fen >= 0 AND redemption_value_milli_fen >= 0", name="prices"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    coalition_id: Mapped[int] = mapped_column(BigId, _coalition_fk())
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    role: Mapped[str] = mapped_column(String(16))
    issue_price_milli_fen: Mapped[int] = mapped_column(Integer)  # per point
    redemption_value_milli_fen: Mapped[int] = mapped_column(Integer)  # per point
    funding: Mapped[str] = mapped_column(String(16))
    prepaid_balance: Mapped[int] = mapped_column(BigInteger, default=0)  # points left in bought blocks
    joined_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    left_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CoalitionCard(Base):
    __tablename__ = "coalition_cards"
    __table_args__ = (UniqueConstraint("coalition_id", "card_no"), Index("ix_coalition_cards_merged", "merged_into_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    coalition_id: Mapped[int] = mapped_column(BigId, _coalition_fk())
    card_no: Mapped[str] = mapped_column(String(32))
    merged_into_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("coalition_cards.id"), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CoalitionCardLink(Base):
    """A card linked to a base profile at one member merchant, with the consent that allowed it."""

    __tablename__ = "coalition_card_links"
    __table_args__ = (UniqueConstraint("coalition_id", "tenant_id", "profile_id"),
                      Index("ix_coalition_card_links_card", "card_id"),
                      # A merchant's links of some profiles: read on every OneID merge (cards.py).
                      Index("ix_coalition_card_links_tenant_profile", "tenant_id", "profile_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    coalition_id: Mapped[int] = mapped_column(BigId, _coalition_fk())
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    card_id: Mapped[int] = mapped_column(BigId, ForeignKey("coalition_cards.id"))
    profile_id: Mapped[int] = mapped_column(BigId, ForeignKey("profiles.id"))
    consent_source: Mapped[str] = mapped_column(String(100))
    linked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CoalitionCardMerge(Base):
    """Cards joined because a merchant's OneID merged the profiles they were linked to."""

    __tablename__ = "coalition_card_merges"
    __table_args__ = (Index("ix_coalition_card_merges_profile_merge", "profile_merge_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    coalition_id: Mapped[int] = mapped_column(BigId, _coalition_fk())
    tenant_id: Mapped[int] = mapped_column(tenant_fk())  # the merchant whose OneID merge caused it
    profile_merge_id: Mapped[int] = mapped_column(BigId, ForeignKey("profile_merges.id"))
    survivor_card_id: Mapped[int] = mapped_column(BigId, ForeignKey("coalition_cards.id"))
    merged_card_id: Mapped[int] = mapped_column(BigId, ForeignKey("coalition_cards.id"))
    moved_card_ids: Mapped[list[int]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    undone_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class CoalitionOperation(Base):
    """One idempotent write by one member merchant (keys are unique per coalition and merchant)."""

    __tablename__ = "coalition_operations"
    __table_args__ = (UniqueConstraint("coalition_id", "tenant_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    coalition_id: Mapped[int] = mapped_column(BigId, _coalition_fk())
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    idempotency_key: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    card_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("coalition_cards.id"), default=None)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    booked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CoalitionLot(Base):
    __tablename__ = "coalition_lots"
    __table_args__ = (
        Index("ix_coalition_lots_card", "card_id", "expires_at"),
        Index("ix_coalition_lots_expiry", "coalition_id", "expires_at"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_in_range"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    coalition_id: Mapped[int] = mapped_column(BigId, _coalition_fk())
    tenant_id: Mapped[int] = mapped_column(tenant_fk())  # the issuing merchant
    card_id: Mapped[int] = mapped_column(BigId, ForeignKey("coalition_cards.id"))
    operation_id: Mapped[int] = mapped_column(BigId, ForeignKey("coalition_operations.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    earned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class CoalitionEntry(Base):
    """One append-only change; ``lot.remaining == sum(entries of the lot)``."""

    __tablename__ = "coalition_entries"
    __table_args__ = (
        Index("ix_coalition_entries_booked", "coalition_id", "booked_at"),
        Index("ix_coalition_entries_card", "card_id", "id"),
        CheckConstraint(f"kind IN ({_in(EntryKind)})", name="kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    coalition_id: Mapped[int] = mapped_column(BigId, _coalition_fk())
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    card_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("coalition_cards.id"), default=None)
    operation_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("coalition_operations.id"), default=None)
    lot_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("coalition_lots.id"), default=None)
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(BigInteger)  # + issue and purchase, - redeem and expire
    price_milli_fen: Mapped[int] = mapped_column(Integer, default=0)  # per point, the terms then in force
    funding: Mapped[str | None] = mapped_column(String(16), default=None)  # of an issue
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    booked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # occurred_at, or the first open moment


class CoalitionPeriod(Base):
    """A closed settlement period; its statement lines never change."""

    __tablename__ = "coalition_periods"
    __table_args__ = (UniqueConstraint("coalition_id", "starts_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    coalition_id: Mapped[int] = mapped_column(BigId, _coalition_fk())
    label: Mapped[str] = mapped_column(String(7))  # 2026-11, in the coalition's time zone
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_by: Mapped[str] = mapped_column(String(100))


class CoalitionStatementLine(Base):
    __tablename__ = "coalition_statement_lines"
    __table_args__ = (UniqueConstraint("period_id", "party", "tenant_id"),
                      CheckConstraint(f"party IN ({_in(Party)})", name="party"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    period_id: Mapped[int] = mapped_column(BigId, ForeignKey("coalition_periods.id", ondelete="CASCADE"))
    coalition_id: Mapped[int] = mapped_column(BigId, _coalition_fk())
    party: Mapped[str] = mapped_column(String(16))
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    points_issued: Mapped[int] = mapped_column(BigInteger)
    points_issued_postpaid: Mapped[int] = mapped_column(BigInteger)
    points_redeemed: Mapped[int] = mapped_column(BigInteger)
    points_expired: Mapped[int] = mapped_column(BigInteger)
    points_purchased: Mapped[int] = mapped_column(BigInteger)
    issue_owed_fen: Mapped[int] = mapped_column(BigInteger)
    purchase_owed_fen: Mapped[int] = mapped_column(BigInteger)
    redemption_due_fen: Mapped[int] = mapped_column(BigInteger)
    owed_fen: Mapped[int] = mapped_column(BigInteger)
    due_fen: Mapped[int] = mapped_column(BigInteger)
    net_fen: Mapped[int] = mapped_column(BigInteger)
