"""Tables of the tenants domain.

Every row below the merchant carries ``tenant_id``; foreign keys between tenant rows include the
tenant (``(tenant_id, store_id)``), so the database itself refuses a staff member of one merchant
assigned to another merchant's store.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from lianjie.db import Base, BigId, UTCDateTime, utcnow


class StoreType(StrEnum):
    FLAGSHIP = "flagship"
    MALL = "mall"
    COMMUNITY = "community"
    ONLINE = "online"


class StoreStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class StaffRole(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    STORE_MANAGER = "store_manager"
    GUIDE = "guide"


class StaffStatus(StrEnum):
    ACTIVE = "active"
    LEFT = "left"


class ApiKeyKind(StrEnum):
    WRITE = "write"
    ADMIN = "admin"


def _in(values: type[StrEnum]) -> str:
    return ", ".join(f"'{v.value}'" for v in values)


class Merchant(Base):
    """A merchant is the tenant: every operational row belongs to exactly one."""

    __tablename__ = "merchants"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Store(Base):
    __tablename__ = "stores"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        UniqueConstraint("tenant_id", "id"),
        CheckConstraint(f"type IN ({_in(StoreType)})", name="type"),
        CheckConstraint(f"status IN ({_in(StoreStatus)})", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(64))
    province: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=StoreStatus.OPEN.value)
    opened_on: Mapped[dt.date | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Staff(Base):
    """An employee; shopping guides (导购) and store managers belong to one store."""

    __tablename__ = "staff"
    __table_args__ = (
        UniqueConstraint("tenant_id", "staff_no"),
        ForeignKeyConstraint(["tenant_id", "store_id"], ["stores.tenant_id", "stores.id"]),
        CheckConstraint(f"role IN ({_in(StaffRole)})", name="role"),
        CheckConstraint(f"status IN ({_in(StaffStatus)})", name="status"),
        Index("ix_staff_tenant_store", "tenant_id", "store_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    staff_no: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    store_id: Mapped[int | None] = mapped_column(BigId, default=None)
    wecom_userid: Mapped[str | None] = mapped_column(String(64), default=None)
    phone_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    phone_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[str] = mapped_column(String(16), default=StaffStatus.ACTIVE.value)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ApiKey(Base):
    """A credential: the secret is shown once and only its SHA-256 is kept."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(f"kind IN ({_in(ApiKeyKind)})", name="kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(100))
    source: Mapped[str | None] = mapped_column(String(40), default=None)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class AuditEntry(Base):
    """One admin write: who made it, what it did to which thing, when, and the values before and after.

    Append-only. ``actor`` is ``key:<id>`` for an admin key, ``cli:<os user>`` for the command line,
    ``job:<name>`` for a background job (a console user, later, ``user:<id>``).
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
