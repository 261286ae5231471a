"""Shapes of the catalogue API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from lianjie.commerce.models import ProductStatus

Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,63}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class CategoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: Code
    name: Text
    parent_code: Code | None = Field(default=None, description="None for a top-level category.")


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
    brand: Text | None = None
    category_code: Code | None = None
    price_fen: int = Field(ge=0, le=10**11, description="List price in fen (¥199.00 = 19900).")
    status: ProductStatus = ProductStatus.ACTIVE


class ProductUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text | None = None
    brand: Text | None = None
    category_code: Code | None = None
    price_fen: int | None = Field(default=None, ge=0, le=10**11)
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
