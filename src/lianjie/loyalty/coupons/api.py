"""Coupons API: templates, issuing (to customers or as printable codes), a customer's coupons,
claiming, validating a basket at the till, redeeming for an order, voiding, and conflicts to review.

A ``profile_id`` may be any profile of a customer; answers are about the whole customer."""

from __future__ import annotations

import io
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from lianjie.http import DbSession, RowId
from lianjie.loyalty.coupons import issuing, redemption, templates
from lianjie.loyalty.coupons.models import CouponStatus, CouponTemplate, TemplateStatus
from lianjie.loyalty.coupons.schemas import (
    BasketIn,
    ClaimIn,
    ConflictOut,
    CouponOut,
    IssueIn,
    IssueOut,
    RedeemIn,
    RedeemOut,
    TemplateIn,
    TemplateOut,
    TemplatePatch,
    ValidateOut,
    VoidIn,
)
from lianjie.pagination import Limit, Offset, Page
from lianjie.tenants.auth import RequireScope
from lianjie.tenants.keys import Caller

router = APIRouter(prefix="/api/v1/coupons", tags=["coupons"])
Reader = Annotated[Caller, RequireScope("coupons:read")]
Writer = Annotated[Caller, RequireScope("coupons:write")]
TemplateCode = Annotated[str, Path(min_length=1, max_length=40)]
Code = Annotated[str, Path(min_length=1, max_length=64)]
REPLAY: dict[int | str, dict[str, Any]] = {
    200: {"description": "Sent before (same key, or same code and order): the stored result, nothing applied."}}


@router.post("/templates", status_code=201, responses=REPLAY)
def create_template(body: TemplateIn, response: Response, session: DbSession, caller: Writer) -> TemplateOut:
    """A coupon design; creating the same code with the same content again answers 200."""
    template, created = templates.create(session, caller.tenant_id, body)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return templates.out(template)


@router.get("/templates")
def list_templates(session: DbSession, caller: Reader, template_status: Annotated[
        TemplateStatus | None, Query(alias="status")] = None, limit: Limit = 100,
        offset: Offset = 0) -> Page[TemplateOut]:
    rows, total = templates.list_templates(session, caller.tenant_id, limit=limit, offset=offset,
                                           status=template_status.value if template_status else None)
    return Page(items=[templates.out(t) for t in rows], total=total, limit=limit, offset=offset)


@router.get("/templates/{template_code}")
def get_template(template_code: TemplateCode, session: DbSession, caller: Reader) -> TemplateOut:
    return templates.out(templates.get(session, caller.tenant_id, template_code))


@router.patch("/templates/{template_code}")
def update_template(template_code: TemplateCode, body: TemplatePatch, session: DbSession,
                    caller: Writer) -> TemplateOut:
    """Pause, resume or end; rename; change stock (not below what was issued) or the per-customer limit."""
    return templates.out(templates.update(session, caller.tenant_id, template_code, body))


@router.post("/templates/{template_code}/issue", status_code=201, responses=REPLAY)
def issue(template_code: TemplateCode, body: IssueIn, response: Response, session: DbSession,
          caller: Writer) -> IssueOut:
    """To one customer (409 ``coupon_limit_reached`` / ``coupon_out_of_stock``), to a list (customers at
    their limit are listed in ``refused``), or ``count`` unbound codes (see ``/issues/{id}/codes.csv``)."""
    issued = issuing.issue(session, caller.tenant_id, template_code, body)
    response.status_code = status.HTTP_200_OK if issued.replayed else status.HTTP_201_CREATED
    return issued.out(session)


@router.get("/issues/{issue_id}/codes.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}, "description": "code (printed), qr_payload"}})
def issue_codes_csv(issue_id: RowId, session: DbSession, caller: Reader) -> Response:
    """The codes of an issue for a print shop: the printed form and the QR payload."""
    found, rows = issuing.codes_csv_rows(session, caller.tenant_id, issue_id)
    buffer = io.StringIO()
    issuing.write_codes_csv(rows, buffer)
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="coupons-issue-{found.id}.csv"'})


@router.get("/codes")
def list_coupons(session: DbSession, caller: Reader, profile_id: Annotated[int, Query(ge=1, le=2**63 - 1)],
                 coupon_status: Annotated[CouponStatus | None, Query(alias="status")] = None,
                 template_code: Annotated[str | None, Query(max_length=40)] = None, limit: Limit = 100,
                 offset: Offset = 0) -> Page[CouponOut]:
    """A customer's coupons (every profile merged into it), newest first."""
    items, total = issuing.of_customer(session, caller.tenant_id, profile_id, template_code=template_code,
                                       status=coupon_status.value if coupon_status else None, limit=limit,
                                       offset=offset)
    return Page(items=items, total=total, limit=limit, offset=offset)


def _out(session: DbSession, coupon: Any) -> CouponOut:
    return issuing.coupon_out(coupon, session.get_one(CouponTemplate, coupon.template_id).code)


@router.get("/codes/{code}")
def get_coupon(code: Code, session: DbSession, caller: Reader) -> CouponOut:
    return _out(session, issuing.find(session, caller.tenant_id, code))


@router.post("/codes/{code}/claim")
def claim(code: Code, body: ClaimIn, session: DbSession, caller: Writer) -> CouponOut:
    """Bind a printed (unbound) code to a customer; claiming it again for the same customer is a no-op."""
    return _out(session, issuing.claim(session, caller.tenant_id, code, body.profile_id))


@router.post("/codes/{code}/void")
def void(code: Code, body: VoidIn, session: DbSession, caller: Writer) -> CouponOut:
    return _out(session, redemption.void(session, caller.tenant_id, code, body.reason))


@router.post("/validate")
def validate(body: BasketIn, session: DbSession, caller: Reader) -> ValidateOut:
    """Whether the coupon applies to the basket, how much comes off each line, or why not. Changes nothing."""
    return redemption.validate(session, caller.tenant_id, body)


@router.post("/redeem", status_code=201, responses=REPLAY)
def redeem(body: RedeemIn, response: Response, session: DbSession, caller: Writer) -> RedeemOut:
    """Use the coupon for ``order_no``, an order already stored (404 ``order_not_found``), for its buyer
    (409 ``order_other_customer`` / ``coupon_other_customer``): exactly one order gets a single-use code
    (409 ``coupon_already_redeemed`` for the rest); the same code and order again answers 200."""
    result = redemption.redeem(session, caller.tenant_id, body)
    response.status_code = status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED
    return result


@router.get("/conflicts")
def list_conflicts(session: DbSession, caller: Reader, limit: Limit = 100, offset: Offset = 0) -> Page[ConflictOut]:
    """Orders that named a coupon which could not be redeemed for them, newest first."""
    rows, total = redemption.conflicts(session, caller.tenant_id, limit=limit, offset=offset)
    return Page(items=[ConflictOut.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)
