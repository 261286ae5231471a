"""Request and response shapes of the coupons API (money in fen, times with their UTC offset)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from lianjie.commerce.models import OrderChannel
from lianjie.loyalty.coupons.models import CouponKind, TemplateStatus

Key = Field(min_length=1, max_length=128, description="Idempotency key: a retry with the same key applies nothing.")
TemplateCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,40}$")]
Sku = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ShortCode = Annotated[str, StringConstraints(min_length=1, max_length=40)]
CouponCode = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Fen = Annotated[int, Field(ge=0, le=10**12)]
PositiveFen = Annotated[int, Field(gt=0, le=10**12)]
MAX_CODES_PER_ISSUE = 10_000  # one request; the CLI issues bigger print runs as several


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScopeIn(In):
    """Where a coupon applies; an empty list restricts nothing. Categories include their subcategories."""

    skus: list[Sku] = Field(default_factory=list, max_length=1000)
    exclude_skus: list[Sku] = Field(default_factory=list, max_length=1000)
    categories: list[ShortCode] = Field(default_factory=list, max_length=200)
    exclude_categories: list[ShortCode] = Field(default_factory=list, max_length=200)
    stores: list[ShortCode] = Field(default_factory=list, max_length=1000)
    channels: list[OrderChannel] = Field(default_factory=list, max_length=10)


_NEEDS: dict[CouponKind, tuple[set[str], set[str]]] = {
    # kind: (fields it needs, fields it may have besides the common ones)
    CouponKind.AMOUNT_OFF: ({"amount_off_fen"}, set()),
    CouponKind.PERCENT_OFF: ({"percent_off"}, {"max_discount_fen"}),
    CouponKind.SPEND_SAVE: ({"threshold_fen", "amount_off_fen"}, {"max_discount_fen", "per_threshold"}),
    CouponKind.FREE_GIFT: ({"gift_sku"}, set()),
}
_KIND_FIELDS = {"amount_off_fen", "percent_off", "max_discount_fen", "threshold_fen", "per_threshold", "gift_sku"}


class TemplateIn(In):
    """A coupon design. Validity is a fixed window (``valid_from``/``valid_until``), or ``valid_days``
    whole days after the day of issue in the merchant's time zone (bounded by ``valid_until`` if given)."""

    code: TemplateCode
    name: str = Field(min_length=1, max_length=100)
    kind: CouponKind
    amount_off_fen: PositiveFen | None = Field(None, description="amount_off: the amount; spend_save: Y of 满X减Y.")
    percent_off: int | None = Field(None, ge=1, le=99, description="percent_off: 15 means 15% off (八五折).")
    max_discount_fen: PositiveFen | None = Field(None, description="A cap on the discount.")
    threshold_fen: PositiveFen | None = Field(None, description="spend_save: X of 满X减Y.")
    per_threshold: bool = Field(False, description="spend_save: Y for every full X (每满X减Y).")
    gift_sku: Sku | None = Field(None, description="free_gift: one unit of this SKU is free.")
    min_spend_fen: Fen = Field(0, description="Least in-scope amount for any kind.")
    scope: ScopeIn = Field(default_factory=ScopeIn)
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    valid_days: int | None = Field(None, ge=1, le=3650)
    per_customer_limit: int | None = Field(None, ge=1, le=10_000)
    stock: int | None = Field(None, ge=1, le=100_000_000,
                              description="Coupons that may ever be issued; none: no limit.")

    @model_validator(mode="after")
    def _fits_its_kind(self) -> TemplateIn:
        needed, allowed = _NEEDS[self.kind]
        given = {f for f in _KIND_FIELDS if getattr(self, f) not in (None, False)}
        missing = sorted(needed - given)
        if missing:
            raise ValueError(f"a {self.kind.value} coupon needs {', '.join(missing)}")
        extra = sorted(given - needed - allowed)
        if extra:
            raise ValueError(f"a {self.kind.value} coupon takes no {', '.join(extra)}")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self


class TemplatePatch(In):
    """What may change once coupons are out: name, status (pause, resume, end), stock and limit."""

    name: str | None = Field(None, min_length=1, max_length=100)
    status: TemplateStatus | None = None
    stock: int | None = Field(None, ge=1, le=100_000_000)
    per_customer_limit: int | None = Field(None, ge=1, le=10_000)


class TemplateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    kind: str
    amount_off_fen: int | None
    percent_off: int | None
    max_discount_fen: int | None
    threshold_fen: int | None
    per_threshold: bool
    gift_sku: str | None
    min_spend_fen: int
    scope: dict[str, list[str]]
    valid_from: dt.datetime | None
    valid_until: dt.datetime | None
    valid_days: int | None
    per_customer_limit: int | None
    stock: int | None
    issued: int
    status: str
    created_at: dt.datetime


class IssueIn(In):
    """Issue to one customer (``profile_id``), to a list (``profile_ids``), or ``count`` unbound codes."""

    idempotency_key: str = Key
    profile_id: int | None = Field(None, ge=1, le=2**63 - 1)
    profile_ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] | None = Field(None, min_length=1, max_length=1000)
    count: int | None = Field(None, ge=1, le=MAX_CODES_PER_ISSUE, description="Unbound codes for print or QR.")

    @model_validator(mode="after")
    def _one_target(self) -> IssueIn:
        given = [name for name in ("profile_id", "profile_ids", "count") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of profile_id, profile_ids or count")
        if self.profile_ids is not None and len(set(self.profile_ids)) != len(self.profile_ids):
            raise ValueError("profile_ids lists a profile twice")
        return self


class CouponOut(BaseModel):
    code: str
    template_code: str
    status: str = Field(description="issued, redeemed, expired or void (expired once valid_until has passed).")
    profile_id: int | None = Field(description="The base profile it was issued to or claimed by; none: unclaimed.")
    valid_from: dt.datetime
    valid_until: dt.datetime | None
    order_no: str | None
    discount_fen: int | None
    redeemed_at: dt.datetime | None
    issued_at: dt.datetime


class RefusedOut(BaseModel):
    profile_id: int
    code: str
    message: str


class IssueOut(BaseModel):
    issue_id: int
    template_code: str
    kind: str
    replayed: bool
    coupons: list[CouponOut]
    refused: list[RefusedOut] = Field(description="Customers who got nothing, e.g. at their per-customer limit.")


class ClaimIn(In):
    profile_id: int = Field(ge=1, le=2**63 - 1)


class VoidIn(In):
    reason: str = Field(min_length=1, max_length=200)


class BasketLineIn(In):
    sku: Sku
    category_code: ShortCode | None = Field(None, description="Default: the product's category in the catalogue.")
    quantity: int = Field(ge=1, le=100_000)
    amount_fen: Fen = Field(description="What the line costs before this coupon (after any line discount).")


class BasketIn(In):
    """A till's basket: the coupon asks nothing else of it."""

    code: CouponCode
    profile_id: int | None = Field(None, ge=1, le=2**63 - 1, description="The customer at the till, if known.")
    store_code: ShortCode | None = None
    channel: OrderChannel | None = None
    at: AwareDatetime | None = Field(None, description="When; default now.")
    lines: list[BasketLineIn] = Field(min_length=1, max_length=500)


class RedeemIn(BasketIn):
    order_no: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ReasonOut(BaseModel):
    code: str
    message: str
    message_zh: str


class AllocationOut(BaseModel):
    line: int = Field(description="Index of the basket line, from 0.")
    sku: str
    discount_fen: int


class GiftOut(BaseModel):
    sku: str
    quantity: int
    in_basket: bool = Field(description="False: add the gift line to the basket, it will be free.")


class ValidateOut(BaseModel):
    code: str
    template_code: str | None
    applicable: bool
    discount_fen: int
    eligible_fen: int = Field(description="The in-scope part of the basket the discount is computed on.")
    allocations: list[AllocationOut]
    gift: GiftOut | None
    reasons: list[ReasonOut] = Field(description="Why not, when not applicable.")


class RedeemOut(BaseModel):
    code: str
    order_no: str
    profile_id: int | None
    discount_fen: int
    allocations: list[AllocationOut]
    gift: GiftOut | None
    redeemed_at: dt.datetime
    replayed: bool


class ConflictOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    order_no: str
    code: str
    reason: str
    message: str
    discount_fen: int
    created_at: dt.datetime
