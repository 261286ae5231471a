"""Tables of the commerce domain: category tree, products, orders and refunds (money in fen).

An order keeps the *base profile* its buyer resolved to (``profile_id``), never the customer's root:
merges and unmerges then move no order rows, and a customer's orders are those of every profile
merged into its root. Foreign keys between a merchant's rows include ``tenant_id``, as in tenants.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lianjie.db import Base, BigId, UTCDateTime, utcnow


class ProductStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


class OrderChannel(StrEnum):
    OFFLINE = "offline"
    ONLINE = "online"
    MINIPROGRAM = "miniprogram"
    WECOM = "wecom"


class OrderStatus(StrEnum):
    COMPLETED = "completed"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


# 64-bit like every money column (migration 0019); SQLite's INTEGER already is, and keeps its declared type.
PRICE = BigInteger().with_variant(Integer(), "sqlite")


def _in(values: type[StrEnum]) -> str:
    return ", ".join(f"'{v.value}'" for v in values)


class Category(Base):
    """A node of the merchant's category tree (服装 > 女装 > 连衣裙), named by the merchant's code."""

    __tablename__ = "categories"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    parent_code: Mapped[str | None] = mapped_column(String(40), default=None)
    level: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Product(Base):
    """A sellable SKU with its list price in fen (the merchant's currency)."""

    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("tenant_id", "sku"),
        Index("ix_products_tenant_category", "tenant_id", "category_code"),
        CheckConstraint("price_fen >= 0", name="price_not_negative"),
        CheckConstraint("status IN ('active', 'inactive')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    brand: Mapped[str | None] = mapped_column(String(100), default=None)
    category_code: Mapped[str | None] = mapped_column(String(40), default=None)
    price_fen: Mapped[int] = mapped_column(PRICE)
    status: Mapped[str] = mapped_column(String(16), default=ProductStatus.ACTIVE.value)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Order(Base):
    """A completed sale; totals are computed by the service from the lines and order-level discounts.

    ``discounts`` lists order-level discounts and coupons as sent (``{"kind", "code", "amount_fen"}``);
    their total is allocated to the lines (``OrderLine.allocated_fen``) so refunds and points can use
    each line's paid amount. ``buyer_hash`` is a keyed hash of the buyer identifiers as sent, kept only
    to recognise a replay; the identifiers themselves live (encrypted where personal) in the event.
    """

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("tenant_id", "order_no"),
        UniqueConstraint("tenant_id", "id"),
        ForeignKeyConstraint(["tenant_id", "store_id"], ["stores.tenant_id", "stores.id"]),
        Index("ix_orders_tenant_ordered", "tenant_id", "ordered_at"),
        Index("ix_orders_profile", "profile_id"),
        CheckConstraint(f"channel IN ({_in(OrderChannel)})", name="channel"),
        CheckConstraint(f"status IN ({_in(OrderStatus)})", name="status"),
        CheckConstraint("list_fen >= 0 AND discount_fen >= 0 AND paid_fen >= 0 AND refunded_fen >= 0",
                        name="money_not_negative"),
        CheckConstraint("paid_fen = list_fen - discount_fen", name="paid_is_list_less_discount"),
        CheckConstraint("refunded_fen <= paid_fen", name="refunds_within_paid"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    order_no: Mapped[str] = mapped_column(String(64))
    ordered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    store_id: Mapped[int | None] = mapped_column(BigId, default=None)
    channel: Mapped[str] = mapped_column(String(16))
    guide_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("staff.id"), default=None)
    payment_method: Mapped[str | None] = mapped_column(String(32), default=None)
    currency: Mapped[str] = mapped_column(String(3))
    profile_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("profiles.id"), default=None)
    buyer_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    discounts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    list_fen: Mapped[int] = mapped_column(BigInteger)
    discount_fen: Mapped[int] = mapped_column(BigInteger)
    paid_fen: Mapped[int] = mapped_column(BigInteger)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(20), default=OrderStatus.COMPLETED.value)
    source: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    lines: Mapped[list[OrderLine]] = relationship(back_populates="order", order_by="OrderLine.line_no",
                                                  cascade="all, delete-orphan")


class OrderLine(Base):
    """One line: ``paid_fen = list_fen - discount_fen - allocated_fen`` (its own and its share of the order's)."""

    __tablename__ = "order_lines"
    __table_args__ = (
        UniqueConstraint("order_id", "line_no"),
        ForeignKeyConstraint(["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"], ondelete="CASCADE"),
        Index("ix_order_lines_tenant_sku", "tenant_id", "sku"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_fen >= 0 AND list_fen >= 0 AND discount_fen >= 0 AND allocated_fen >= 0 "
                        "AND paid_fen >= 0", name="money_not_negative"),
        CheckConstraint("paid_fen = list_fen - discount_fen - allocated_fen", name="paid_is_list_less_discounts"),
        CheckConstraint("refunded_quantity >= 0 AND refunded_quantity <= quantity", name="refunded_quantity"),
        CheckConstraint("refunded_fen >= 0 AND refunded_fen <= paid_fen", name="refunded_fen"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(BigId)
    line_no: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[int] = mapped_column(BigId, ForeignKey("products.id"))
    category_code: Mapped[str | None] = mapped_column(String(40), default=None)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_fen: Mapped[int] = mapped_column(BigInteger)
    list_fen: Mapped[int] = mapped_column(BigInteger)
    discount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    allocated_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_fen: Mapped[int] = mapped_column(BigInteger)
    refunded_quantity: Mapped[int] = mapped_column(Integer, default=0)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)

    order: Mapped[Order] = relationship(back_populates="lines")


class Refund(Base):
    """Money given back against an order; ``request`` is the request as sent, to recognise a replay."""

    __tablename__ = "refunds"
    __table_args__ = (
        UniqueConstraint("tenant_id", "refund_no"),
        UniqueConstraint("tenant_id", "id"),
        ForeignKeyConstraint(["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"], ondelete="CASCADE"),
        Index("ix_refunds_order", "order_id"),
        CheckConstraint("amount_fen >= 0", name="amount_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(BigId)
    refund_no: Mapped[str] = mapped_column(String(64))
    refunded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(200), default=None)
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    lines: Mapped[list[RefundLine]] = relationship(back_populates="refund", order_by="RefundLine.line_no",
                                                   cascade="all, delete-orphan")


class RefundLine(Base):
    """How many units of one order line a refund returned, and for how much."""

    __tablename__ = "refund_lines"
    __table_args__ = (
        UniqueConstraint("refund_id", "line_no"),
        ForeignKeyConstraint(["tenant_id", "refund_id"], ["refunds.tenant_id", "refunds.id"], ondelete="CASCADE"),
        CheckConstraint("quantity >= 0 AND amount_fen >= 0", name="not_negative"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    refund_id: Mapped[int] = mapped_column(BigId)
    order_line_id: Mapped[int] = mapped_column(BigId, ForeignKey("order_lines.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(BigInteger)

    refund: Mapped[Refund] = relationship(back_populates="lines")
