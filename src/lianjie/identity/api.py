"""Profile API: a customer by id or by any identifier, their events, tags, consent, PIPL requests,
and the identity graph's review tools (merges and undo, conflicts, suspicious values, settings)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from lianjie.crypto import get_cipher
from lianjie.errors import ValidationFailed
from lianjie.http import DbSession, RowId
from lianjie.identity import merging, privacy, service
from lianjie.identity.config import load_config
from lianjie.identity.schemas import (
    BlockIn,
    ConflictOut,
    ConsentIn,
    ConsentOut,
    EventOut,
    MergeOut,
    ProfileOut,
    ProfileSummary,
    ResolveIn,
    SuspiciousValue,
    TagsIn,
    UnmergeIn,
)
from lianjie.pagination import Limit, Offset, Page
from lianjie.tenants.auth import RequireScope
from lianjie.tenants.keys import Caller
from lianjie.validation import AwareTime

router = APIRouter(prefix="/api/v1", tags=["profiles"])
Reader = Annotated[Caller, RequireScope("profiles:read")]
Writer = Annotated[Caller, RequireScope("profiles:write")]
LOOKUP_DOC = ("Look up by identifier: one query parameter per identifier type (user_id, anonymous_id, phone, email, "
              "member_no, wechat_unionid, wechat_openid with wechat_appid, wecom_external_userid, device_id). "
              "Without identifiers: search by tag, trait (key=value) and last activity.")


@router.get("/profiles", description=LOOKUP_DOC)
def find_profiles(request: Request, session: DbSession, caller: Reader, tag: str | None = None,
                  trait: Annotated[str | None, Query(description="key=value of a non-personal trait")] = None,
                  seen_after: AwareTime | None = None, seen_before: AwareTime | None = None,
                  limit: Limit = 50, offset: Offset = 0) -> Page[ProfileSummary]:
    config = load_config(session, caller.tenant_id)
    params = request.query_params
    wanted = {name: params[name] for name in config.types if name in params}
    if "wechat_openid" in wanted and params.get("wechat_appid"):
        wanted["wechat_openid"] = f"{params['wechat_appid']}:{wanted['wechat_openid']}"
    if wanted:
        roots = sorted(service.find_by_identifiers(session, get_cipher(), caller.tenant_id, wanted))
        items = [service.summarise(r, service.members(session, caller.tenant_id, r)) for r in roots]
        return Page(items=items, total=len(items), limit=limit, offset=0)
    pair = None
    if trait is not None:
        key, sep, value = trait.partition("=")
        if not sep or not key:
            raise ValidationFailed("trait must be key=value", field="trait")
        pair = (key, value)
    rows, total = service.search(session, caller.tenant_id, tag=tag, trait=pair, seen_after=seen_after,
                                 seen_before=seen_before, limit=limit, offset=offset)
    return Page(items=list(rows), total=total, limit=limit, offset=offset)


@router.get("/profiles/{profile_id}")
def get_profile(profile_id: RowId, session: DbSession, caller: Reader) -> ProfileOut:
    """A customer: identifiers, traits, consent, activity and recent events (a merged id answers for its survivor)."""
    return service.get_profile(session, get_cipher(), caller.tenant_id, profile_id,
                               reveal_pii=caller.allows("profiles:write"))


@router.get("/profiles/{profile_id}/events")
def profile_events(profile_id: RowId, session: DbSession, caller: Reader, event: str | None = None,
                   limit: Limit = 100, offset: Offset = 0) -> Page[EventOut]:
    """The customer's full event history, newest first (personal fields are not included)."""
    rows, total = service.profile_events(session, caller.tenant_id, profile_id, limit=limit, offset=offset,
                                         event=event)
    return Page(items=[EventOut.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)


@router.post("/profiles/{profile_id}/tags")
def update_tags(profile_id: RowId, body: TagsIn, session: DbSession, caller: Writer) -> list[str]:
    return service.update_tags(session, caller.tenant_id, profile_id, body)


@router.post("/profiles/{profile_id}/consent")
def record_consent(profile_id: RowId, body: ConsentIn, session: DbSession, caller: Writer) -> list[ConsentOut]:
    """Record a consent decision for a purpose and channel; the history is kept."""
    return privacy.record_consent(session, caller.tenant_id, profile_id, body)


@router.post("/profiles/{profile_id}/export", tags=["PIPL"])
def export_profile(profile_id: RowId, session: DbSession, caller: Writer) -> dict[str, Any]:
    """Everything held about the person (PIPL access request)."""
    return privacy.export(session, get_cipher(), caller.tenant_id, profile_id)


@router.post("/profiles/{profile_id}/erase", tags=["PIPL"])
def erase_profile(profile_id: RowId, session: DbSession, caller: Writer) -> dict[str, int]:
    """Remove the person's PII and identifiers, keeping anonymous aggregates (PIPL deletion request)."""
    return privacy.erase(session, get_cipher(), caller.tenant_id, profile_id)


@router.get("/identity/merges", tags=["identity graph"])
def list_merges(session: DbSession, caller: Reader, profile_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
                limit: Limit = 100, offset: Offset = 0) -> Page[MergeOut]:
    """Merges, newest first (``profile_id``: those of that profile's customer)."""
    rows, total = merging.list_merges(session, caller.tenant_id, profile_id=profile_id, limit=limit, offset=offset)
    return Page(items=[MergeOut.model_validate(m) for m in rows], total=total, limit=limit, offset=offset)


@router.post("/identity/merges/{merge_id}/undo", tags=["identity graph"])
def undo_merge(merge_id: RowId, session: DbSession, caller: Writer, body: UnmergeIn | None = None) -> MergeOut:
    """Undo a merge: the profiles it moved become their own customer again, with their events."""
    return MergeOut.model_validate(merging.unmerge(session, caller.tenant_id, merge_id,
                                                   (body or UnmergeIn()).reason))


@router.get("/identity/conflicts", tags=["identity graph"])
def list_conflicts(session: DbSession, caller: Reader, open_only: bool = True, limit: Limit = 100,
                   offset: Offset = 0) -> Page[ConflictOut]:
    """Links refused because of a per-customer limit, newest first (``open_only=false``: resolved ones too)."""
    rows, total = merging.list_conflicts(session, caller.tenant_id, open_only=open_only, limit=limit, offset=offset)
    return Page(items=[ConflictOut.model_validate(c) for c in rows], total=total, limit=limit, offset=offset)


@router.post("/identity/conflicts/{conflict_id}/resolve", tags=["identity graph"])
def resolve_conflict(conflict_id: RowId, body: ResolveIn, session: DbSession, caller: Writer) -> ConflictOut:
    """Resolve a conflict with a decision (keep, split or block_value; see the body's schema). The same
    decision again answers 200 with the stored resolution; another one on a resolved conflict is a 409."""
    return ConflictOut.model_validate(merging.resolve_conflict(session, get_cipher(), caller.tenant_id, conflict_id,
                                                               body.decision, body.note))


@router.get("/identity/suspicious", tags=["identity graph"])
def suspicious(session: DbSession, caller: Reader, days: Annotated[int, Query(ge=1, le=365)] = 7,
               min_merges: Annotated[int, Query(ge=2, le=1_000_000)] = 5) -> list[SuspiciousValue]:
    """Values that merged many profiles lately: likely a new placeholder (block it below)."""
    return merging.suspicious_values(session, get_cipher(), caller.tenant_id, days=days, min_merges=min_merges)


@router.post("/identity/blocked", tags=["identity graph"])
def block(body: BlockIn, session: DbSession, caller: Writer) -> dict[str, Any]:
    """Block a value from linking anyone, and undo the merges it caused."""
    undone = merging.block_value(session, get_cipher(), caller.tenant_id, body.type, body.value,
                                 undo_merges=body.undo_merges)
    return {"blocked": True, "undone_merges": [m.id for m in undone]}


@router.get("/identity/settings", tags=["identity graph"])
def get_settings(session: DbSession, caller: Reader) -> dict[str, Any]:
    """Identifier types (priority, per-customer limit) and blocked values."""
    return load_config(session, caller.tenant_id).to_json()


@router.put("/identity/settings", tags=["identity graph"])
def put_settings(body: dict[str, Any], session: DbSession, caller: Writer) -> dict[str, Any]:
    """Replace the identifier types and blocked values (removing a value here unblocks it)."""
    return merging.update_settings(session, caller.tenant_id, body).to_json()
