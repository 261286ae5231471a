"""Tables of segments: the saved rules and their snapshots (members go to the warehouse).

A segment's ``name`` is unique among the merchant's live (not archived) segments, which makes
creating one safe to retry: the same name with the same rule answers the stored segment. Each change
of the rule bumps ``rule_version``; a snapshot records the rule and version it was taken with, so
size history stays explainable after edits. Snapshot ids never repeat (SQLite AUTOINCREMENT, a
PostgreSQL sequence): a snapshot whose transaction rolled back after its members reached the
warehouse leaves rows under an id nothing will ever name again.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from lianjie.db import Base, BigId, UTCDateTime, tenant_fk, utcnow


class Segment(Base):
    __tablename__ = "segments"
    __table_args__ = (
        Index("uq_segments_tenant_live_name", "tenant_id", "name", unique=True,
              postgresql_where=text("archived_at IS NULL"), sqlite_where=text("archived_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk(), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(1000), default=None)
    rule: Mapped[Any] = mapped_column(JSON)
    rule_version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str | None] = mapped_column(String(100), default=None)
    updated_by: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class SegmentSnapshot(Base):
    __tablename__ = "segment_snapshots"
    __table_args__ = (
        UniqueConstraint("segment_id", "idempotency_key"),
        Index("ix_segment_snapshots_segment_taken", "segment_id", "taken_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(tenant_fk())
    segment_id: Mapped[int] = mapped_column(BigId, ForeignKey("segments.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str | None] = mapped_column(String(100), default=None)
    rule: Mapped[Any] = mapped_column(JSON)
    rule_version: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    size: Mapped[int] = mapped_column(BigInteger)
    taken_by: Mapped[str | None] = mapped_column(String(100), default=None)
    taken_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
