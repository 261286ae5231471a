"""Tables of the identity domain.

The identity graph is kept as *base profiles* that point to a survivor:

- every identifier (a phone, a unionid, a device id …) belongs to the base profile it was first
  seen with, and never moves;
- every event is stored against the base profile of the strongest identifier it carried;
- a merge only sets ``merged_into_id`` of the absorbed profiles to the survivor.

So a customer is the survivor plus every profile pointing at it, and undoing a merge only resets
pointers: identifiers and events go back with the profiles they were attributed to.

Events, identifiers and identity conflicts carry no foreign keys (migration 0014): only identity
resolution writes them, under the merchant's identity-graph lock, naming the profile it has just
resolved or created, and nothing deletes a profile or a merchant. On PostgreSQL the two keys of an
event were more than half the cost of inserting it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from lianjie.db import Base, BigId, SettingsDocument, UTCDateTime, tenant_fk, utcnow


class Profile(Base):
    """One base profile; ``merged_into_id`` names its survivor once merged (always a root)."""

    __tablename__ = "profiles"
    __table_args__ = (Index("ix_profiles_tenant_merged", "tenant_id", "merged_into_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    merged_into_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("profiles.id"), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    first_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    # {"trait": [value, "event time ISO"]}: the newest event time wins, whatever the arrival order.
    traits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The same shape for personal traits (name, phone, email, address …), AES-GCM encrypted.
    pii_traits_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    erased_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class ProfileTag(Base):
    """A manual tag an operator put on a customer."""

    __tablename__ = "profile_tags"
    __table_args__ = (UniqueConstraint("profile_id", "tag"), Index("ix_profile_tags_tenant_tag", "tenant_id", "tag"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    profile_id: Mapped[int] = mapped_column(BigId, ForeignKey("profiles.id"))
    tag: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Identifier(Base):
    """A typed identifier value, matched by keyed hash; PII values are kept only encrypted."""

    __tablename__ = "identifiers"
    __table_args__ = (
        # The keyed hash covers "type:value", so it is unique on its own within a merchant.
        UniqueConstraint("tenant_id", "value_hash"),
        Index("ix_identifiers_profile", "profile_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigId)
    type: Mapped[str] = mapped_column(String(40))
    value_hash: Mapped[str] = mapped_column(String(64))
    value: Mapped[str | None] = mapped_column(String(200), default=None)
    value_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    profile_id: Mapped[int] = mapped_column(BigId)
    first_message_id: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Event(Base):
    """One accepted message, as sent, minus PII (kept encrypted beside it)."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "message_id"),
        # The profile alone (migration 0015): with the time in it, its pages were most of what a
        # commit of tracking batches wrote; a customer's events are read for all its profiles at once.
        Index("ix_events_profile", "profile_id"),
        # No (tenant_id, received_at) index: nothing reads events by arrival, and each index is work on
        # ingestion's hot path (the warehouse sync follows ``id``).
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigId)
    message_id: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(16))
    event: Mapped[str | None] = mapped_column(String(200), default=None)
    profile_id: Mapped[int | None] = mapped_column(BigId, default=None)
    user_id: Mapped[str | None] = mapped_column(String(200), default=None)
    anonymous_id: Mapped[str | None] = mapped_column(String(200), default=None)
    source: Mapped[str | None] = mapped_column(String(40), default=None)
    timestamp: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    original_timestamp: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    pii_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)


class Merge(Base):
    """A merge of ``merged_id`` (and the profiles already in it) into ``survivor_id``, and its undoing."""

    __tablename__ = "profile_merges"
    __table_args__ = (Index("ix_profile_merges_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    survivor_id: Mapped[int] = mapped_column(BigId, ForeignKey("profiles.id"))
    merged_id: Mapped[int] = mapped_column(BigId, ForeignKey("profiles.id"))
    moved_ids: Mapped[list[int]] = mapped_column(JSON)
    cause_message_id: Mapped[str | None] = mapped_column(String(100), default=None)
    cause_identifier_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("identifiers.id"), default=None)
    cause_type: Mapped[str | None] = mapped_column(String(40), default=None)
    # The message's strongest identifier on the surviving side: with cause_identifier_id, the two
    # values the message tied together. A placeholder value shows up in one of them again and again.
    via_identifier_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("identifiers.id"), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    undone_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    undone_reason: Mapped[str | None] = mapped_column(String(200), default=None)


class IdentityConflict(Base):
    """A link that was not made because it would break a per-type limit; kept for review.

    ``type`` is the identifier type whose limit would break; ``profile_ids`` the message's customer
    and, for a refused merge, the customer holding ``identifier_id``, the identifier that would have
    merged them (of ``identifier_type``; none for a new identifier left unlinked, which is stored
    nowhere). An operator resolves it once with a ``decision`` (see ``merging.resolve_conflict``),
    whose effect is kept in ``outcome``.
    """

    __tablename__ = "identity_conflicts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigId, index=True)
    message_id: Mapped[str | None] = mapped_column(String(100), default=None)
    type: Mapped[str] = mapped_column(String(40))
    profile_ids: Mapped[list[int]] = mapped_column(JSON)
    detail: Mapped[str] = mapped_column(String(500))
    identifier_id: Mapped[int | None] = mapped_column(BigId, default=None)
    identifier_type: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    decision: Mapped[str | None] = mapped_column(String(16), default=None)
    resolved_by: Mapped[str | None] = mapped_column(String(120), default=None)
    note: Mapped[str | None] = mapped_column(String(500), default=None)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class IdentitySettings(SettingsDocument, Base):
    """A merchant's identifier types (priority, per-profile limit) and blocked values, as data."""

    __tablename__ = "identity_settings"


class Consent(Base):
    """The latest decision per purpose and channel; earlier ones stay in the history rows."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_profile", "profile_id", "purpose", "channel"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    profile_id: Mapped[int] = mapped_column(BigId, ForeignKey("profiles.id"))
    purpose: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(40))
    granted: Mapped[bool]
    source: Mapped[str] = mapped_column(String(100))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ErasedIdentifier(Base):
    """Hash of an identifier erased under PIPL: seeing it again starts a new, flagged profile."""

    __tablename__ = "erased_identifiers"
    __table_args__ = (UniqueConstraint("tenant_id", "value_hash"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    type: Mapped[str] = mapped_column(String(40))
    value_hash: Mapped[str] = mapped_column(String(64))
    erased_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
