"""Shapes of the profile API."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lianjie.validation import AwareTime


class IdentifierOut(BaseModel):
    type: str
    value: str = Field(description="Personal values (phone, email) are masked unless the key has profiles:write.")
    profile_id: int = Field(description="The base profile it was first seen with.")
    created_at: dt.datetime


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    message_id: str
    type: str
    event: str | None
    timestamp: dt.datetime
    received_at: dt.datetime
    source: str | None
    profile_id: int | None
    payload: dict[str, Any]


class ConsentOut(BaseModel):
    purpose: str
    channel: str
    granted: bool
    source: str
    recorded_at: dt.datetime


class ProfileOut(BaseModel):
    id: int = Field(description="The customer's id: the surviving profile.")
    merged_ids: list[int] = Field(description="Base profiles merged into this customer.")
    created_at: dt.datetime
    first_seen_at: dt.datetime | None
    last_seen_at: dt.datetime | None
    event_count: int
    identifiers: list[IdentifierOut]
    traits: dict[str, Any]
    tags: list[str]
    consent: list[ConsentOut]
    recent_events: list[EventOut]
    erased: bool
    reappeared_after_erasure: bool = Field(description="Started by an identifier that an erased customer held.")


class ProfileSummary(BaseModel):
    id: int
    first_seen_at: dt.datetime | None
    last_seen_at: dt.datetime | None
    event_count: int


class TagsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    add: list[str] = Field(default_factory=list, max_length=50)
    remove: list[str] = Field(default_factory=list, max_length=50)


class Purpose(StrEnum):
    MARKETING = "marketing"
    PERSONALISATION = "personalisation"
    ANALYTICS = "analytics"
    COALITION = "coalition"  # linking the profile to a coalition points card shared with partner merchants


class Channel(StrEnum):
    SMS = "sms"
    WECOM = "wecom"
    WECHAT_TEMPLATE = "wechat_template"
    EMAIL = "email"
    ALL = "all"


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    purpose: Purpose
    channel: Channel
    granted: bool
    source: str = Field(min_length=1, max_length=100,
                        description="Where it was given: 'miniprogram signup', 'store SH001' …")
    recorded_at: AwareTime | None = Field(default=None, description="When the customer decided; default now.")


class MergeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    survivor_id: int
    merged_id: int
    moved_ids: list[int]
    cause_message_id: str | None
    cause_type: str | None
    created_at: dt.datetime
    undone_at: dt.datetime | None
    undone_reason: str | None


class Decision(StrEnum):
    KEEP = "keep"
    SPLIT = "split"
    BLOCK_VALUE = "block_value"


class ConflictOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    message_id: str | None
    type: str = Field(description="The identifier type whose per-customer limit the link would break.")
    profile_ids: list[int] = Field(description="The message's customer, then the customer holding the identifier.")
    identifier_type: str | None = Field(description="Type of the identifier that would have merged them; null "
                                                    "when a new identifier was left unlinked.")
    detail: str
    created_at: dt.datetime
    resolved_at: dt.datetime | None
    decision: Decision | None
    resolved_by: str | None = Field(description="Who resolved it: key:<id>, cli:<user> …")
    note: str | None
    outcome: dict[str, Any] | None = Field(description="What the decision did (split: the new profile holding "
                                                       "the identifier; block_value: the merges undone).")


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Decision = Field(description="keep: both customers stay as they are, the identifier where it is; "
                                           "split: the identifier leaves the customer holding it for a profile "
                                           "of its own; block_value: its value is blocked for the merchant "
                                           "and the merges it caused are undone.")
    note: str | None = Field(default=None, max_length=500, description="Why, for the next reviewer.")


class UnmergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="operator", max_length=200)


class BlockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(description="Identifier type, or '*' for every type.")
    value: str = Field(min_length=0, max_length=200)
    undo_merges: bool = Field(default=True, description="Undo the merges this value caused.")


class SuspiciousValue(BaseModel):
    type: str
    value: str
    identifier_id: int
    merges: int
    profiles: int
    first_merge_at: dt.datetime
    last_merge_at: dt.datetime
