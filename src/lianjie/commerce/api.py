"""Catalogue API: the category tree and products, upserted by the merchant's own codes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from lianjie.commerce import catalogue
from lianjie.commerce.models import ProductStatus
from lianjie.commerce.schemas import CategoryIn, CategoryOut, ProductIn, ProductOut, ProductUpdate
from lianjie.errors import ValidationFailed
from lianjie.http import DbSession
from lianjie.pagination import MAX_LIMIT, Page
from lianjie.tenants.auth import RequireScope
from lianjie.tenants.keys import Caller

router = APIRouter(prefix="/api/v1", tags=["catalogue"])
Reader = Annotated[Caller, RequireScope("catalogue:read")]
Writer = Annotated[Caller, RequireScope("catalogue:write")]


def _status(response: Response, outcome: str) -> None:
    response.status_code = status.HTTP_201_CREATED if outcome == "created" else status.HTTP_200_OK


@router.get("/categories")
def list_categories(session: DbSession, caller: Reader) -> list[CategoryOut]:
    """The whole tree, parents before children."""
    return [CategoryOut.model_validate(c) for c in catalogue.list_categories(session, caller.tenant_id)]


@router.put("/categories/{code}", status_code=201, responses={200: {"description": "Updated or unchanged."}})
def put_category(code: str, body: CategoryIn, response: Response, session: DbSession, caller: Writer) -> CategoryOut:
    """Create or update a category; the code in the path and the body must agree."""
    if body.code != code:
        raise ValidationFailed(f"the path says {code!r} but the body says {body.code!r}", field="code")
    category, outcome = catalogue.upsert_category(session, caller.tenant_id, body)
    _status(response, outcome)
    return CategoryOut.model_validate(category)


@router.get("/products")
def list_products(session: DbSession, caller: Reader,
                  category_code: Annotated[str | None, Query(description="Includes subcategories.")] = None,
                  status: ProductStatus | None = None, q: Annotated[str | None, Query(max_length=100)] = None,
                  limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
                  offset: Annotated[int, Query(ge=0)] = 0) -> Page[ProductOut]:
    rows, total = catalogue.list_products(session, caller.tenant_id, category_code=category_code, status=status,
                                          q=q, limit=limit, offset=offset)
    return Page(items=[ProductOut.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)


@router.post("/products", status_code=201, responses={200: {"description": "The SKU existed: updated or unchanged."}})
def upsert_product(body: ProductIn, response: Response, session: DbSession, caller: Writer) -> ProductOut:
    """Create a product, or update the one with this SKU (feeds can resend safely)."""
    product, outcome = catalogue.upsert_product(session, caller.tenant_id, body)
    _status(response, outcome)
    return ProductOut.model_validate(product)


@router.get("/products/{sku}")
def get_product(sku: str, session: DbSession, caller: Reader) -> ProductOut:
    return ProductOut.model_validate(catalogue.get_product(session, caller.tenant_id, sku))


@router.patch("/products/{sku}")
def update_product(sku: str, body: ProductUpdate, session: DbSession, caller: Writer) -> ProductOut:
    return ProductOut.model_validate(catalogue.update_product(session, caller.tenant_id, sku, body))
