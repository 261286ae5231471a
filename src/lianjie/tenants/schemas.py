"""Shapes that enter and leave the tenants domain (HTTP bodies and CLI input alike)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from lianjie.tenants.models import ApiKeyKind, StaffRole, StaffStatus, StoreStatus, StoreType

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$")]
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
PersonName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Place = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


def _check_timezone(value: str) -> str:
    if value not in available_timezones():
        raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'Asia/Shanghai'")
    return value


def _check_currency(value: str) -> str:
    if len(value) != 3 or not value.isalpha() or not value.isupper():
        raise ValueError("currency must be an ISO 4217 code such as 'CNY'")
    return value


TimeZone = Annotated[str, AfterValidator(_check_timezone)]
Currency = Annotated[str, AfterValidator(_check_currency)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MerchantCreate(Strict):
    slug: Slug = Field(description="Short ascii name used in URLs and the CLI, e.g. 'huamei'.")
    name: Name
    currency: Currency = "CNY"
    timezone: TimeZone = "Asia/Shanghai"


class MerchantUpdate(Strict):
    name: Name | None = None
    timezone: TimeZone | None = None


class MerchantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    slug: str
    name: str
    currency: str
    timezone: str
    created_at: dt.datetime


class StoreCreate(Strict):
    code: Code = Field(description="The merchant's own store code (unique per merchant), e.g. 'SH001'.")
    name: Name
    city: Place
    province: Place
    type: StoreType
    opened_on: dt.date | None = None


class StoreUpdate(Strict):
    name: Name | None = None
    city: Place | None = None
    province: Place | None = None
    type: StoreType | None = None
    status: StoreStatus | None = None
    opened_on: dt.date | None = None


class StoreOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    code: str
    name: str
    city: str
    province: str
    type: StoreType
    status: StoreStatus
    opened_on: dt.date | None
    created_at: dt.datetime
    updated_at: dt.datetime


class StaffCreate(Strict):
    staff_no: Code = Field(description="Employee number, unique per merchant.")
    name: PersonName
    role: StaffRole
    store_code: Code | None = Field(
        default=None, description="Required for store managers and shopping guides; none for owner/admin."
    )
    wecom_userid: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    phone: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 -]{5,20}$")] | None = None


class StaffUpdate(Strict):
    name: PersonName | None = None
    role: StaffRole | None = None
    store_code: Code | None = None
    wecom_userid: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    status: StaffStatus | None = None


class StaffOut(BaseModel):
    staff_no: str
    name: str
    role: StaffRole
    store_code: str | None
    wecom_userid: str | None
    phone: str | None = Field(description="Shown only to keys with the staff:write scope.")
    status: StaffStatus
    created_at: dt.datetime
    updated_at: dt.datetime


class ApiKeyCreate(Strict):
    kind: ApiKeyKind
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    scopes: list[str] = Field(default_factory=list, description="Admin keys only, e.g. ['stores:read'].")
    source: Code | None = Field(
        default=None, description="Write keys only: where its events come from (pos, miniprogram, web …)."
    )


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    kind: ApiKeyKind
    name: str
    source: str | None
    scopes: list[str]
    prefix: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret. It is shown this once and never again.")


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: dt.datetime = Field(description="When the write was made (UTC).")
    actor: str = Field(description="`key:<id>` (an admin key), `cli:<user>`, `job:<name>` or `system`.")
    action: str = Field(description="`<thing>.<verb>`, e.g. `apikey.revoke`, `loyalty_programme.update`.")
    target: str = Field(description="What was changed, e.g. `api_key:12`, `profile:345`.")
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
