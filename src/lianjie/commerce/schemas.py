"""Shapes of the commerce API: catalogue, orders and refunds (money in fen)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from lianjie.commerce.models import OrderChannel, OrderStatus, ProductStatus

# Every bound below is at most its column's length (PostgreSQL enforces VARCHAR(n); SQLite does not).
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,63}$")]  # a SKU: 64
CategoryCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,39}$")]  # 40
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
MAX_PRICE_FEN = 10**11


class CategoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: CategoryCode
    name: Name
    parent_code: CategoryCode | None = Field(default=None, description="None for a top-level category.")


class CategoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    code: str
    name: str
    parent_code: str | None
    level: int


class ProductIn(BaseModel):
    """A product as the merchant's ERP sends it; sending the same SKU again updates it."""

    model_config = ConfigDict(extra="forbid")
    sku: Code
    name: Text
    brand: Name | None = None
    category_code: CategoryCode | None = None
    price_fen: int = Field(ge=0, le=MAX_PRICE_FEN, description="List price in fen (¥199.00 = 19900).")
    status: ProductStatus = ProductStatus.ACTIVE


class ProductUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text | None = None
    brand: Name | None = None
    category_code: CategoryCode | None = None
    price_fen: int | None = Field(default=None, ge=0, le=MAX_PRICE_FEN)
    status: ProductStatus | None = None


class ProductOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    sku: str
    name: str
    brand: str | None
    category_code: str | None
    price_fen: int
    status: ProductStatus
    updated_at: dt.datetime


class ImportSummary(BaseModel):
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[dict[str, str | int]] = Field(default_factory=list)


# ---- orders ----------------------------------------------------------------------------------------

Fen = Annotated[int, Field(ge=0, le=10**12)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
OrderNo = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/:#]{0,63}$")]
Ident = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
OpenId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
AppId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class BuyerIn(BaseModel):
    """Whatever the channel knows of the buyer; every field is optional and none at all means a guest.

    The names are OneID's identifier types; an openid needs the app it belongs to (``wechat_appid``).
    OneID keeps an openid as ``appid:openid`` in a 200-character column, hence their shorter bounds
    (WeChat's own are 18 and 28 characters).
    """

    model_config = ConfigDict(extra="forbid")
    user_id: Ident | None = None
    anonymous_id: Ident | None = None
    member_no: Ident | None = None
    phone: Ident | None = None
    email: Ident | None = None
    wechat_unionid: Ident | None = None
    wechat_openid: OpenId | None = None
    wechat_appid: AppId | None = None
    wecom_external_userid: Ident | None = None
    device_id: Ident | None = None


class LineIn(BaseModel):
    """One order line. Give the unit price, or the line's gross amount (weighed goods), or both."""

    model_config = ConfigDict(extra="forbid")
    line_no: int | None = Field(default=None, ge=1, le=10_000, description="Default: position, from 1.")
    sku: Code
    quantity: int = Field(gt=0, le=1_000_000)
    unit_price_fen: Fen | None = None
    list_fen: Fen | None = Field(default=None, description="Gross line amount; default quantity x unit price.")
    discount_fen: Fen = Field(default=0, description="The line's own discount.")

    @model_validator(mode="after")
    def _priced(self) -> LineIn:
        if self.unit_price_fen is None and self.list_fen is None:
            raise ValueError("give unit_price_fen or list_fen")
        return self


class DiscountKind(StrEnum):
    DISCOUNT = "discount"
    COUPON = "coupon"


class DiscountIn(BaseModel):
    """An order-level discount (满减 …) or a coupon used; spread over the lines by their amounts."""

    model_config = ConfigDict(extra="forbid")
    kind: DiscountKind = DiscountKind.DISCOUNT
    code: Label | None = None
    amount_fen: int = Field(gt=0, le=10**12)

    @model_validator(mode="after")
    def _coupon_code(self) -> DiscountIn:
        if self.kind == DiscountKind.COUPON and not self.code:
            raise ValueError("a coupon needs its code")
        return self


class OrderIn(BaseModel):
    """A completed sale as a till, shop or mini-program sends it; sending it again is safe."""

    model_config = ConfigDict(extra="forbid")
    order_no: OrderNo
    ordered_at: AwareDatetime = Field(description="With its UTC offset; a time without one is refused.")
    store_code: Code | None = None
    channel: OrderChannel
    guide_staff_no: Code | None = None
    payment_method: Label | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = Field(
        default=None, description="Default: the merchant's currency.")
    buyer: BuyerIn = Field(default_factory=BuyerIn)
    lines: list[LineIn] = Field(min_length=1, max_length=500)
    discounts: list[DiscountIn] = Field(default_factory=list, max_length=50)
    paid_fen: Fen | None = Field(default=None, description="If given, must equal the computed paid total.")


class LineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    line_no: int
    sku: str
    category_code: str | None
    quantity: int
    unit_price_fen: int
    list_fen: int
    discount_fen: int
    allocated_fen: int = Field(description="This line's share of the order-level discounts.")
    paid_fen: int
    refunded_quantity: int
    refunded_fen: int


class RefundLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    line_no: int
    quantity: int
    amount_fen: int


class RefundOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    refund_no: str
    order_no: str
    refunded_at: dt.datetime
    amount_fen: int
    reason: str | None
    lines: list[RefundLineOut]


class OrderSummaryOut(BaseModel):
    order_no: str
    ordered_at: dt.datetime
    store_code: str | None
    channel: OrderChannel
    guide_staff_no: str | None
    payment_method: str | None
    currency: str
    profile_id: int | None = Field(description="The buyer's base profile (None: a guest).")
    list_fen: int
    discount_fen: int
    paid_fen: int
    refunded_fen: int
    status: OrderStatus


class WarningOut(BaseModel):
    field: str = Field(description="Where in the request, e.g. 'buyer.phone'.")
    message: str


class OrderOut(OrderSummaryOut):
    discounts: list[dict[str, Any]]
    lines: list[LineOut]
    refunds: list[RefundOut]
    warnings: list[WarningOut] = Field(default_factory=list, description=(
        "What in this request could not be used although the order was stored (a buyer phone that is not "
        "a phone number); answered to the request that sent it, a replay included, and not stored."))


class RefundLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    line_no: int = Field(ge=1, le=10_000)
    quantity: int = Field(gt=0, le=1_000_000)
    amount_fen: Fen | None = Field(default=None, description="Default: the line's paid amount pro rata.")


class RefundIn(BaseModel):
    """A refund of the whole order (no lines) or of some units of some lines; safe to resend."""

    model_config = ConfigDict(extra="forbid")
    refund_no: OrderNo
    refunded_at: AwareDatetime | None = Field(default=None, description="Default: now.")
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    lines: list[RefundLineIn] | None = Field(default=None, min_length=1, max_length=500)
