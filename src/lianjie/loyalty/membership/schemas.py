"""Request and response shapes of the paid membership API (money in fen, dates local to the merchant)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from lianjie.loyalty.membership.models import MergePolicy, RefundAfter

Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,39}$")]
Sku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,63}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Key = Field(min_length=1, max_length=128, description="Idempotency key: a retry with the same key applies nothing.")
Multiplier = Annotated[Decimal, Field(ge=1, le=100, max_digits=8, decimal_places=4)]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanFields(In):
    name: Text
    sku: Sku = Field(description="The catalogue product that sells the plan (it must exist).")
    fee_fen: int = Field(ge=0, le=10**9)
    term_months: int = Field(12, ge=1, le=120)
    grace_days: int = Field(30, ge=0, le=366)
    reward_bp: int = Field(0, ge=0, le=10_000, description="Reward in basis points of eligible spend: 200 = 2 %.")
    reward_cap_fen: int = Field(0, ge=0, le=10**9, description="Most reward per membership year.")
    member_price: bool = False
    points_multiplier: Multiplier = Decimal(1)
    refund_full_days: int | None = Field(None, ge=0, le=3650,
                                         description="Full refund within this many days; null: always (Costco).")
    refund_after: RefundAfter = RefundAfter.PRORATED
    rank: int = Field(0, ge=0, le=1000, description="Higher ranks are upgrades of lower ones.")
    merge_policy: MergePolicy = MergePolicy.EXTEND


class PlanIn(PlanFields):
    code: Code


class PlanUpdate(In):
    """Changes apply to terms sold from now on; terms already sold keep their dates and fee."""

    name: Text | None = None
    fee_fen: int | None = Field(None, ge=0, le=10**9)
    grace_days: int | None = Field(None, ge=0, le=366)
    reward_bp: int | None = Field(None, ge=0, le=10_000)
    reward_cap_fen: int | None = Field(None, ge=0, le=10**9)
    member_price: bool | None = None
    points_multiplier: Multiplier | None = None
    refund_full_days: int | None = Field(None, ge=0, le=3650)
    refund_after: RefundAfter | None = None
    rank: int | None = Field(None, ge=0, le=1000)
    merge_policy: MergePolicy | None = None
    status: Annotated[str, StringConstraints(pattern="^(active|retired)$")] | None = None


class PlanOut(PlanIn):
    model_config = ConfigDict(from_attributes=True)
    status: str


class RenewIn(In):
    idempotency_key: str = Key
    plan_code: Code | None = Field(None, description="Renew into another plan; default the current one.")
    order_no: str | None = Field(None, max_length=64, description="The till's receipt for the fee, if any.")
    operator: str | None = Field(None, max_length=100)


class UpgradeIn(In):
    idempotency_key: str = Key
    plan_code: Code
    order_no: str | None = Field(None, max_length=64)
    operator: str | None = Field(None, max_length=100)


class RefundIn(In):
    idempotency_key: str = Key
    reason: str = Field(min_length=1, max_length=200)
    operator: str = Field(min_length=1, max_length=100)
    amount_fen: int | None = Field(None, ge=0, le=10**9, description="Default: what the plan's refund policy gives.")


class MembershipUpdate(In):
    auto_renew: bool


class RedeemIn(In):
    order_no: str = Field(min_length=1, max_length=64, description="The order the certificate paid towards.")


class PeriodOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    seq: int
    kind: str
    plan_code: str
    profile_id: int
    starts_on: dt.date
    ends_on: dt.date
    grace_until: dt.date
    fee_fen: int
    charged_fen: int
    carried_fen: int
    refunded_fen: int
    payment: str
    order_no: str | None
    status: str
    closed_on: dt.date | None
    extension_days: int


class MembershipOut(BaseModel):
    id: int
    profile_id: int = Field(description="The base profile that joined.")
    plan_code: str
    joined_on: dt.date
    auto_renew: bool
    status: str = Field(description="Today: active, grace, lapsed, refunded, merged or pending (starts later).")
    ends_on: dt.date | None
    grace_until: dt.date | None
    reward_accrued_fen: int = Field(description="This membership year's reward so far, after the cap.")
    refund_quote_fen: int = Field(description="What a refund today would give back by the plan's policy.")
    periods: list[PeriodOut]


class CertificateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    code: str
    membership_id: int
    profile_id: int
    amount_fen: int
    status: str
    issued_on: dt.date
    redeemed_at: dt.datetime | None
    redeemed_order_no: str | None
    clawback_owed_fen: int
    void_reason: str | None


class ActionOut(BaseModel):
    """What a write did; ``replayed`` when its idempotency key had been applied before."""

    action_id: int
    kind: str
    membership_id: int | None
    period_id: int | None
    replayed: bool = False
    outcome: dict[str, Any] = Field(default_factory=dict)


class UpgradeQuote(BaseModel):
    plan_code: str
    fee_fen: int
    remaining_days: int
    total_days: int
    ends_on: dt.date


class MembersKpi(BaseModel):
    at: dt.date
    paid_members: int = Field(description="Memberships active or in grace on that day.")
    in_grace: int
    by_plan: dict[str, int]


class RevenueMonth(BaseModel):
    month: str
    recognised_fen: int
    by_plan: dict[str, int]


class RenewalCell(BaseModel):
    due: int
    renewed: int
    rate: float | None


class RenewalKpi(BaseModel):
    window_from: dt.date
    window_to: dt.date = Field(description="Terms due in [window_from, window_to) whose grace has ended.")
    due: int
    renewed: int
    rate: float | None
    by_plan: dict[str, RenewalCell]
    by_join_month: dict[str, RenewalCell]
