"""HTTP API of the tenants domain: the merchant itself, stores, staff and API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from lianjie import jobruns
from lianjie.http import DbSession, RowId
from lianjie.pagination import Limit, Offset, Page
from lianjie.tenants import audit, keys, service
from lianjie.tenants.auth import RequireScope
from lianjie.tenants.keys import Caller
from lianjie.tenants.models import StaffRole, StaffStatus, StoreStatus, StoreType
from lianjie.tenants.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    AuditEntryOut,
    MerchantOut,
    MerchantUpdate,
    StaffCreate,
    StaffOut,
    StaffUpdate,
    StoreCreate,
    StoreOut,
    StoreUpdate,
)
from lianjie.validation import AwareTime

router = APIRouter(prefix="/api/v1")


def _created_or_replayed(response: Response, created: bool) -> None:
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK


@router.get("/merchant", tags=["merchant"], summary="The merchant this key belongs to")
def get_merchant(session: DbSession, caller: Annotated[Caller, RequireScope("merchant:read")]) -> MerchantOut:
    return MerchantOut.model_validate(service.get_merchant(session, caller.tenant_id))


@router.patch("/merchant", tags=["merchant"])
def update_merchant(body: MerchantUpdate, session: DbSession,
                    caller: Annotated[Caller, RequireScope("merchant:write")]) -> MerchantOut:
    return MerchantOut.model_validate(service.update_merchant(session, caller.tenant_id, body))


@router.get("/stores", tags=["stores"])
def list_stores(session: DbSession, caller: Annotated[Caller, RequireScope("stores:read")],
                city: str | None = None, type: StoreType | None = None, status: StoreStatus | None = None,
                limit: Limit = 100, offset: Offset = 0) -> Page[StoreOut]:
    rows, total = service.list_stores(session, caller.tenant_id, city=city, type=type, status=status,
                                      limit=limit, offset=offset)
    return Page(items=[StoreOut.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)


@router.post("/stores", tags=["stores"], status_code=201,
             responses={200: {"description": "The same store was already there (safe replay)."}})
def add_store(body: StoreCreate, response: Response, session: DbSession,
              caller: Annotated[Caller, RequireScope("stores:write")]) -> StoreOut:
    store, created = service.add_store(session, caller.tenant_id, body)
    _created_or_replayed(response, created)
    return StoreOut.model_validate(store)


@router.get("/stores/{code}", tags=["stores"])
def get_store(code: str, session: DbSession, caller: Annotated[Caller, RequireScope("stores:read")]) -> StoreOut:
    return StoreOut.model_validate(service.get_store(session, caller.tenant_id, code))


@router.patch("/stores/{code}", tags=["stores"])
def update_store(code: str, body: StoreUpdate, session: DbSession,
                 caller: Annotated[Caller, RequireScope("stores:write")]) -> StoreOut:
    return StoreOut.model_validate(service.update_store(session, caller.tenant_id, code, body))


@router.get("/staff", tags=["staff"])
def list_staff(session: DbSession, caller: Annotated[Caller, RequireScope("staff:read")],
               store_code: str | None = None, role: StaffRole | None = None, status: StaffStatus | None = None,
               limit: Limit = 100, offset: Offset = 0) -> Page[StaffOut]:
    rows, total = service.list_staff(session, caller.tenant_id, store_code=store_code, role=role,
                                     status=status, limit=limit, offset=offset)
    reveal = caller.allows("staff:write")
    items = [service.staff_out(session, r, reveal_phone=reveal) for r in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.post("/staff", tags=["staff"], status_code=201,
             responses={200: {"description": "The same staff member was already there (safe replay)."}})
def add_staff(body: StaffCreate, response: Response, session: DbSession,
              caller: Annotated[Caller, RequireScope("staff:write")]) -> StaffOut:
    staff, created = service.add_staff(session, caller.tenant_id, body)
    _created_or_replayed(response, created)
    return service.staff_out(session, staff, reveal_phone=True)


@router.get("/staff/{staff_no}", tags=["staff"])
def get_staff(staff_no: str, session: DbSession,
              caller: Annotated[Caller, RequireScope("staff:read")]) -> StaffOut:
    staff = service.get_staff(session, caller.tenant_id, staff_no)
    return service.staff_out(session, staff, reveal_phone=caller.allows("staff:write"))


@router.patch("/staff/{staff_no}", tags=["staff"])
def update_staff(staff_no: str, body: StaffUpdate, session: DbSession,
                 caller: Annotated[Caller, RequireScope("staff:write")]) -> StaffOut:
    staff = service.update_staff(session, caller.tenant_id, staff_no, body)
    return service.staff_out(session, staff, reveal_phone=True)


@router.get("/api-keys", tags=["api keys"])
def list_api_keys(session: DbSession, caller: Annotated[Caller, RequireScope("apikeys:read")],
                  include_revoked: bool = False, limit: Limit = 100, offset: Offset = 0) -> Page[ApiKeyOut]:
    rows, total = keys.list_api_keys(session, caller.tenant_id, include_revoked=include_revoked, limit=limit,
                                     offset=offset)
    return Page(items=[ApiKeyOut.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)


@router.post("/api-keys", tags=["api keys"], status_code=201)
def create_api_key(body: ApiKeyCreate, session: DbSession,
                   caller: Annotated[Caller, RequireScope("apikeys:write")]) -> ApiKeyCreated:
    key, secret = keys.create_api_key(session, caller.tenant_id, body, granted_by=caller.scopes)
    return ApiKeyCreated.model_validate({**ApiKeyOut.model_validate(key).model_dump(), "key": secret})


@router.delete("/api-keys/{key_id}", tags=["api keys"])
def revoke_api_key(key_id: RowId, session: DbSession,
                   caller: Annotated[Caller, RequireScope("apikeys:write")]) -> ApiKeyOut:
    """Revoke a key whose scopes this key holds itself; the last ``*`` key stays (409 ``last_full_key``)."""
    return ApiKeyOut.model_validate(keys.revoke_api_key(session, caller.tenant_id, key_id, revoked_by=caller.scopes))


@router.get("/audit", tags=["audit"], summary="The audit log of admin writes, newest first")
def list_audit(session: DbSession, caller: Annotated[Caller, RequireScope("audit:read")],
               action: Annotated[str | None, Query(max_length=64, description="A prefix: `apikey.`")] = None,
               actor: Annotated[str | None, Query(max_length=120)] = None,
               target: Annotated[str | None, Query(max_length=200)] = None,
               since: AwareTime | None = None, until: AwareTime | None = None,
               limit: Limit = 100, offset: Offset = 0) -> Page[AuditEntryOut]:
    rows, total = audit.list_entries(session, caller.tenant_id, action=action, actor=actor, target=target,
                                     since=since, until=until, limit=limit, offset=offset)
    return Page(items=[AuditEntryOut.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/jobs", tags=["jobs"], summary="The background jobs' schedule and their last runs, for this merchant")
def list_jobs(session: DbSession, caller: Annotated[Caller, RequireScope("jobs:read")],
              runs: Annotated[int, Query(ge=1, le=50, description="Runs shown per job, newest first.")] = 5,
              ) -> jobruns.JobsOut:
    """Jobs run for every merchant at once; a run shows this merchant's part of it only (what it did
    here, or why it failed here), never another merchant's figures. ``lianjie jobs history`` is the
    operator's full view."""
    return jobruns.for_merchant(session, caller.tenant_id, runs=runs)
