"""Commerce API: the catalogue (upserted by the merchant's own codes), orders and refunds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from lianjie.commerce import catalogue, orders, refunds
from lianjie.commerce.models import OrderChannel, OrderStatus, ProductStatus
from lianjie.commerce.schemas import (
    CategoryIn,
    CategoryOut,
    OrderIn,
    OrderOut,
    OrderSummaryOut,
    ProductIn,
    ProductOut,
    ProductUpdate,
    RefundIn,
    WarningOut,
)
from lianjie.crypto import get_cipher
from lianjie.errors import ValidationFailed
from lianjie.http import DbSession
from lianjie.pagination import Limit, Offset, Page
from lianjie.tenants.auth import RequireScope
from lianjie.tenants.keys import Caller
from lianjie.validation import AwareTime

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
                  limit: Limit = 100,
                  offset: Offset = 0) -> Page[ProductOut]:
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


# ---- orders and refunds ----------------------------------------------------------------------------

OrderReader = Annotated[Caller, RequireScope("orders:read")]
OrderWriter = Annotated[Caller, RequireScope("orders:write")]


@router.post("/orders", status_code=201, tags=["orders"],
             responses={200: {"description": "The same order was stored before (a safe replay)."},
                        409: {"description": "The order number is taken by an order with other values."}})
def create_order(body: OrderIn, response: Response, session: DbSession, caller: OrderWriter) -> OrderOut:
    """Store a completed order; totals are computed, the buyer is resolved through OneID.

    A buyer phone (or e-mail) that cannot be read does not refuse the sale: it is stored without it
    and the answer lists it under ``warnings``."""
    outcome = orders.record_one(session, get_cipher(), caller.tenant_id, body, source=caller.source or "api")
    assert outcome.order is not None
    _status(response, outcome.status)
    return orders.order_out(session, outcome.order).model_copy(
        update={"warnings": [WarningOut(**w) for w in outcome.warnings]})


@router.get("/orders", tags=["orders"])
def list_orders(session: DbSession, caller: OrderReader,
                profile_id: Annotated[int | None, Query(ge=1, le=2**63 - 1,
                                                        description="The whole customer this profile is part of.")
                                      ] = None,
                store_code: str | None = None, channel: OrderChannel | None = None,
                status: OrderStatus | None = None,
                since: Annotated[AwareTime | None, Query(description="ordered_at on or after")] = None,
                until: Annotated[AwareTime | None, Query(description="ordered_at before (UTC if no offset)")] = None,
                limit: Limit = 100,
                offset: Offset = 0) -> Page[OrderSummaryOut]:
    """Orders, newest first."""
    rows, total = orders.list_orders(session, caller.tenant_id, profile_id=profile_id, store_code=store_code,
                                     channel=channel, status=status, since=since, until=until, limit=limit,
                                     offset=offset)
    return Page(items=orders.summaries(session, rows), total=total, limit=limit, offset=offset)


@router.get("/orders/{order_no}", tags=["orders"])
def get_order(order_no: str, session: DbSession, caller: OrderReader) -> OrderOut:
    """An order with its lines (and each line's share of the order discounts) and its refunds."""
    return orders.order_out(session, orders.get_order(session, caller.tenant_id, order_no))


@router.post("/orders/{order_no}/refunds", status_code=201, tags=["orders"],
             responses={200: {"description": "The same refund was stored before (a safe replay)."},
                        409: {"description": "The refund number is taken by a refund with other values."},
                        422: {"description": "Invalid, or more than is left to refund (refund_exceeds_order)."}})
def create_refund(order_no: str, body: RefundIn, response: Response, session: DbSession,
                  caller: OrderWriter) -> OrderOut:
    """Refund the whole rest of an order (no lines) or some units of some lines; returns the order."""
    _, created = refunds.record_refund(session, get_cipher(), caller.tenant_id, order_no, body,
                                            source=caller.source or "api")
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return orders.order_out(session, orders.get_order(session, caller.tenant_id, order_no))
