"""Request and response shapes of the loyalty API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lianjie.validation import AwareTime

Key = Field(min_length=1, max_length=128, description="Idempotency key: a retry with the same key applies nothing.")


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EarnIn(In):
    idempotency_key: str = Key
    points: int | None = Field(None, ge=1, le=100_000_000, description="Points to credit; or give `event`.")
    event: str | None = Field(None, max_length=100, description="A non-purchase event the programme rewards.")
    reason: str | None = Field(None, max_length=200)
    operator: str | None = Field(None, max_length=100)


class SpendIn(In):
    idempotency_key: str = Key
    points: int = Field(ge=1, le=100_000_000)
    hold: bool = Field(False, description="Hold the points until the till confirms or cancels.")
    order_no: str | None = Field(None, max_length=64)
    reason: str | None = Field(None, max_length=200)


class AdjustIn(In):
    idempotency_key: str = Key
    points: int = Field(ge=-100_000_000, le=100_000_000, description="Positive adds, negative takes; not 0.")
    reason: str = Field(min_length=1, max_length=200)
    operator: str = Field(min_length=1, max_length=100)


class ManualTierIn(In):
    tier_code: str = Field(min_length=1, max_length=40)
    until: AwareTime | None = Field(None, description="Kept until then whatever the customer qualifies for.")
    reason: str = Field(min_length=1, max_length=200)
    operator: str = Field(min_length=1, max_length=100)


class ProgrammeVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    change: str = Field(description="replace (PUT, CLI), patch, rollback, or migrated (saved before versions).")
    rolled_back_to: int | None = Field(description="For a rollback: the version whose document it saved again.")
    saved_by: str = Field(description="Who saved it, as in the audit log: key:<id>, cli:<user>, system.")
    saved_at: dt.datetime
    config: dict[str, Any]


class OperationOut(BaseModel):
    operation_id: int
    kind: str
    points: int = Field(description="Net change of the balance.")
    replayed: bool
    hold_status: str | None = None
    outcome: dict[str, Any] = Field(default_factory=dict)


class ExpiringOut(BaseModel):
    date: dt.date
    points: int


class TierOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    tier_code: str
    previous_code: str | None
    reason: str
    detail: str | None
    operator: str | None
    manual_until: dt.datetime | None
    downgrade_due_at: dt.datetime | None
    created_at: dt.datetime
    profile_id: int


class CurrentTier(BaseModel):
    code: str
    name: str
    points_multiplier: str
    member_price: bool
    since: dt.datetime
    manual_until: dt.datetime | None
    downgrade_due_at: dt.datetime | None


class BalanceOut(BaseModel):
    profile_id: int = Field(description="The customer (root profile).")
    available: int = Field(description="Spendable now: spendable lots less any debt.")
    pending: int = Field(description="Earned but not spendable yet (inside the return window).")
    debt: int
    expiring_soon: list[ExpiringOut]
    tier: CurrentTier | None


class EntryOut(BaseModel):
    id: int
    operation_id: int
    kind: str
    operation_kind: str
    amount: int
    lot_id: int | None
    profile_id: int
    idempotency_key: str
    order_no: str | None
    reason: str | None
    created_at: dt.datetime
