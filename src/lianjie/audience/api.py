"""Audience API: the merchant's trait settings, and a customer's computed traits on their profile."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from lianjie.audience import service
from lianjie.audience import settings as trait_settings
from lianjie.audience.schemas import TraitsOut
from lianjie.http import DbSession, RowId
from lianjie.tenants.auth import RequireScope
from lianjie.tenants.keys import Caller

router = APIRouter(prefix="/api/v1", tags=["audience"])
Reader = Annotated[Caller, RequireScope("audiences:read")]
Writer = Annotated[Caller, RequireScope("audiences:write")]
ProfileReader = Annotated[Caller, RequireScope("profiles:read")]


@router.get("/audience/settings")
def get_settings(session: DbSession, caller: Reader) -> dict[str, Any]:
    """RFM window, lifecycle thresholds (null: derived from the merchant's own purchase gaps) and CLV horizon."""
    return trait_settings.load(session, caller.tenant_id).to_json()


@router.put("/audience/settings")
def put_settings(body: Annotated[Any, Body()], session: DbSession, caller: Writer) -> dict[str, Any]:
    """Replace the settings (left-out keys take their defaults); a bad value is a 400 naming the field.
    They apply from the next compute-traits run."""
    return trait_settings.save(session, caller.tenant_id, body).to_json()


@router.get("/profiles/{profile_id}/traits")
def get_traits(profile_id: RowId, session: DbSession, caller: ProfileReader) -> TraitsOut:
    """The customer's RFM, lifecycle stage and CLV; the id may be any profile of the customer."""
    return TraitsOut.model_validate(service.traits_of(session, caller.tenant_id, profile_id))
