"""Shapes of the segment API. Rules travel as plain JSON and are parsed by rules.parse, so a
malformed rule is a 400 naming its JSON path rather than a generic 422."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RULE_DOC = "A segment rule (see the README's *Segments* section), e.g. {\"trait\": \"rfm_group\", \"op\": \"=\", " \
           "\"value\": \"champions\"}."


class SegmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, description="Unique among live segments; a retry with "
                      "the same name and rule answers the stored segment.")
    description: str | None = Field(default=None, max_length=1000)
    rule: Any = Field(description=RULE_DOC)
    operator: str | None = Field(default=None, max_length=100, description="Who; default the API key.")


class SegmentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    rule: Any = Field(default=None, description=RULE_DOC)
    operator: str | None = Field(default=None, max_length=100)


class SegmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    description: str | None
    rule: Any
    rule_version: int
    created_by: str | None
    updated_by: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    archived_at: dt.datetime | None


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule: Any = Field(description=RULE_DOC)
    sample: int = Field(default=10, ge=0, le=100)


class SampleProfile(BaseModel):
    customer_id: int
    traits: dict[str, Any] = Field(description="The survivor profile's identify traits (no personal fields).")
    rfm_group: str | None
    lifecycle_stage: str | None
    frequency: int | None
    monetary_fen: int | None
    last_order_at: dt.datetime | None


class PreviewOut(BaseModel):
    count: int
    sample: list[SampleProfile]
    as_of: dt.datetime


class SnapshotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=100)
    operator: str | None = Field(default=None, max_length=100)


class SnapshotOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    segment_id: int
    rule_version: int
    as_of: dt.datetime
    size: int
    taken_by: str | None
    taken_at: dt.datetime
    replayed: bool = False


class IdType(StrEnum):
    PHONE = "phone"
    OPENID = "openid"
    CUSTOMER_ID = "customer_id"


class HashKind(StrEnum):
    NONE = "none"
    MD5 = "md5"
    SHA256 = "sha256"
