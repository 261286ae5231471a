"""Request and response shapes of the coalition API.

Prices are given in fen per point with up to three decimals (``"10.5"`` = ¥0.105 a point) and stored
as integer milli-fen; amounts on statements are whole fen.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from lianjie.loyalty.coalition.models import Funding, Role
from lianjie.tenants.schemas import TimeZone
from lianjie.validation import AwareTime

Key = Field(min_length=1, max_length=128, description="Idempotency key (per coalition and merchant): a retry "
                                                      "with the same key applies nothing.")
Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{1,39}$")]
Price = Annotated[Decimal, Field(ge=0, le=100_000, decimal_places=3,
                                 description="Fen per point, up to three decimals: '10.5' is ¥0.105 a point.")]
Points = Annotated[int, Field(ge=1, le=100_000_000)]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CoalitionIn(In):
    code: Code = Field(description="Short lowercase name used in URLs, e.g. 'tpoint'.")
    name: str = Field(min_length=1, max_length=200)
    timezone: TimeZone = "Asia/Shanghai"
    currency: str = Field("CNY", pattern=r"^[A-Z]{3}$")
    expiry_days: int | None = Field(365, ge=1, le=3650, description="Points expire this long after earning; "
                                                                     "null: never.")


class MemberIn(In):
    role: Role = Role.PARTNER
    issue_price_fen_per_point: Price
    redemption_value_fen_per_point: Price
    funding: Funding = Funding.POSTPAID
    left_at: AwareTime | None = Field(None, description="Set to end the membership (no earning or "
                                                          "redeeming from then on).")


class MemberOut(BaseModel):
    merchant: str
    role: str
    issue_price_fen_per_point: Decimal
    redemption_value_fen_per_point: Decimal
    funding: str
    prepaid_balance: int = Field(description="Points left in the blocks bought (prepaid members).")
    joined_at: dt.datetime
    left_at: dt.datetime | None


class CoalitionOut(BaseModel):
    code: str
    name: str
    operator: str = Field(description="The operating merchant's slug.")
    currency: str
    timezone: str
    expiry_days: int | None
    closed_through: dt.datetime | None
    members: list[MemberOut] = Field(description="All members for the operator; a member sees itself.")


class LinkIn(In):
    profile_id: int = Field(ge=1, le=2**63 - 1, description="Any profile of the customer at this merchant.")
    card_no: str | None = Field(None, min_length=1, max_length=32,
                                description="The card the customer shows; none issues a new card.")
    consent_source: str | None = Field(
        None, min_length=1, max_length=100,
        description="Where the customer agreed to link this merchant's profile to the coalition card "
                    "(e.g. 'store SH001 form'); recorded as consent for purpose 'coalition'. Without it the "
                    "customer must already have granted that consent.")


class CardOut(BaseModel):
    card_no: str
    balance: int = Field(description="Spendable points on the card (merged cards included).")
    expiring: list[tuple[dt.date, int]] = Field(description="(last day, points) of the soonest lots, coalition zone.")
    linked_here: list[int] = Field(description="This merchant's profiles linked to the card.")
    merchants_linked: int


class LinkOut(BaseModel):
    card_no: str
    profile_id: int
    created: bool


class PointsIn(In):
    idempotency_key: str = Key
    points: Points
    order_no: str | None = Field(None, max_length=64)


class PurchaseIn(In):
    idempotency_key: str = Key
    points: Points


class OperationOut(BaseModel):
    operation_id: int
    kind: str
    points: int
    card_no: str | None
    replayed: bool
    booked_at: dt.datetime | None = Field(description="The settlement date it counts on (see README).")


class LineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    party: str
    merchant: str
    points_issued: int
    points_issued_postpaid: int
    points_redeemed: int
    points_expired: int
    points_purchased: int
    issue_owed_fen: int
    purchase_owed_fen: int
    redemption_due_fen: int
    owed_fen: int
    due_fen: int
    net_fen: int = Field(description="due - owed: positive, the coalition pays the party; negative, it is billed.")


class StatementOut(BaseModel):
    coalition: str
    period: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    status: str = Field(description="'closed' (stored, final) or 'open' (a preview computed now).")
    closed_at: dt.datetime | None
    currency: str
    lines: list[LineOut]
    net_total_fen: int = Field(description="Always 0 over all parties of a whole statement.")
