"""Loyalty API: the programme, a customer's points (balance, history, earn, spend with hold, adjust)
and tier. A profile id may be any profile of the customer; answers are about the whole customer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse

from lianjie.http import REPLAYED, DbSession, RowId, error_response
from lianjie.loyalty import ledger, programme, service, tiers
from lianjie.loyalty.schemas import (
    AdjustIn,
    BalanceOut,
    EarnIn,
    EntryOut,
    ManualTierIn,
    OperationOut,
    ProgrammeVersionOut,
    SpendIn,
    TierOut,
)
from lianjie.pagination import Limit, Offset, Page
from lianjie.tenants.auth import RequireScope
from lianjie.tenants.keys import Caller

router = APIRouter(prefix="/api/v1/loyalty", tags=["loyalty"])
Reader = Annotated[Caller, RequireScope("loyalty:read")]
Writer = Annotated[Caller, RequireScope("loyalty:write")]


def _answer(result: ledger.Result, response: Response) -> OperationOut:
    response.status_code = status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED
    return OperationOut(operation_id=result.operation_id, kind=result.kind, points=result.points,
                        replayed=result.replayed, hold_status=result.hold_status, outcome=result.outcome)


@router.get("/programme")
def get_programme(session: DbSession, caller: Reader) -> dict[str, Any]:
    """The programme's rules (the defaults until the merchant saves their own)."""
    return programme.load(session, caller.tenant_id).model_dump(mode="json")


@router.put("/programme")
def put_programme(body: dict[str, Any], session: DbSession, caller: Writer) -> dict[str, Any]:
    """Replace the programme's rules with a whole document: every top-level field must be given (422
    ``programme_incomplete`` lists the missing ones); a bad document gets 422 naming the field."""
    return programme.replace(session, caller.tenant_id, body).model_dump(mode="json")


@router.patch("/programme")
def patch_programme(body: dict[str, Any], session: DbSession, caller: Writer) -> dict[str, Any]:
    """Change some rules: a JSON merge patch (RFC 7396) onto the stored programme; nested objects merge,
    ``null`` resets a key to its default."""
    return programme.patch(session, caller.tenant_id, body).model_dump(mode="json")


@router.get("/programme/versions")
def list_programme_versions(session: DbSession, caller: Reader, limit: Limit = 50,
                            offset: Offset = 0) -> Page[ProgrammeVersionOut]:
    """Every saved version of the programme, newest first, with who saved it and when."""
    rows, total = programme.versions(session, caller.tenant_id, limit=limit, offset=offset)
    return Page(items=[ProgrammeVersionOut.model_validate(r) for r in rows], total=total, limit=limit,
                offset=offset)


@router.post("/programme/versions/{version}/rollback", status_code=201)
def rollback_programme(version: RowId, session: DbSession, caller: Writer) -> dict[str, Any]:
    """Save an older version's rules again, as the newest version (the history is kept)."""
    return programme.rollback(session, caller.tenant_id, version).model_dump(mode="json")


@router.get("/accounts/{profile_id}")
def get_balance(profile_id: RowId, session: DbSession, caller: Reader) -> BalanceOut:
    return service.balance(session, caller.tenant_id, profile_id)


@router.get("/accounts/{profile_id}/entries")
def get_history(profile_id: RowId, session: DbSession, caller: Reader,
                limit: Limit = 50,
                offset: Offset = 0) -> Page[EntryOut]:
    items, total = service.history(session, caller.tenant_id, profile_id, limit=limit, offset=offset)
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.post("/accounts/{profile_id}/earn", status_code=201, responses=REPLAYED)
def earn(profile_id: RowId, body: EarnIn, response: Response, session: DbSession, caller: Writer) -> OperationOut:
    """Points for a non-purchase event by the programme's rule (`event`), or a given amount (`points`)."""
    result = ledger.earn(session, caller.tenant_id, profile_id, body.idempotency_key, points=body.points,
                         event=body.event, reason=body.reason, operator=body.operator)
    return _answer(result, response)


@router.post("/accounts/{profile_id}/spend", status_code=201, response_model=OperationOut,
             responses=REPLAYED | {422: {"description": "Too few points (`insufficient_points`): remembered as "
                                         "the key's answer, so a retry gets it again with `details.replayed`."}})
def spend(profile_id: RowId, body: SpendIn, request: Request, response: Response, session: DbSession,
          caller: Writer) -> OperationOut | JSONResponse:
    """Spend now, or with `hold` keep the points aside until the till confirms or cancels.

    A refusal for too few points is returned by the ledger, not raised, so that this request's
    transaction commits it as the key's answer (ledger.try_spend says why)."""
    result = ledger.try_spend(session, caller.tenant_id, profile_id, body.idempotency_key, body.points,
                              hold=body.hold, order_no=body.order_no, reason=body.reason)
    if result.refusal is not None:
        return error_response(request.url.path, result.refusal)
    return _answer(result, response)


@router.post("/accounts/{profile_id}/adjust", status_code=201, responses=REPLAYED)
def adjust(profile_id: RowId, body: AdjustIn, response: Response, session: DbSession, caller: Writer) -> OperationOut:
    result = ledger.adjust(session, caller.tenant_id, profile_id, body.idempotency_key, body.points,
                           reason=body.reason, operator=body.operator)
    return _answer(result, response)


@router.post("/holds/{hold_id}/confirm")
def confirm_hold(hold_id: RowId, session: DbSession, caller: Writer) -> OperationOut:
    result = ledger.confirm_hold(session, caller.tenant_id, hold_id)
    return OperationOut(operation_id=result.operation_id, kind=result.kind, points=result.points,
                        replayed=result.replayed, hold_status=result.hold_status)


@router.post("/holds/{hold_id}/cancel")
def cancel_hold(hold_id: RowId, session: DbSession, caller: Writer) -> OperationOut:
    result = ledger.cancel_hold(session, caller.tenant_id, hold_id)
    return OperationOut(operation_id=result.operation_id, kind=result.kind, points=result.points,
                        replayed=result.replayed, hold_status=result.hold_status)


@router.get("/accounts/{profile_id}/tiers")
def get_tier_history(profile_id: RowId, session: DbSession, caller: Reader) -> list[TierOut]:
    return [TierOut.model_validate(r) for r in service.tier_history(session, caller.tenant_id, profile_id)]


@router.put("/accounts/{profile_id}/tier", status_code=201)
def put_manual_tier(profile_id: RowId, body: ManualTierIn, session: DbSession, caller: Writer) -> TierOut:
    """Give a customer a tier by hand, until a date (then the periodic evaluation takes over again)."""
    customer, config = ledger.customer_and_rules(session, caller.tenant_id, profile_id)
    row = tiers.set_manual(session, config, caller.tenant_id, customer.root, customer.profile_ids, body.tier_code,
                           until=body.until, reason=body.reason, operator=body.operator)
    return TierOut.model_validate(row)
