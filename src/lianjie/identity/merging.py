"""Undoing merges, reviewing conflicts, and catching placeholder values that merge strangers.

Undoing merge *m* (``merged_id`` and the profiles it brought, into ``survivor_id``) puts back every
profile it moved that is still with the survivor's customer: it points to ``merged_id`` again, and
``merged_id`` becomes a customer of its own. Later merges are untouched, so a chain can be undone in
the middle: after A+B (m1), A+C (m2), A+D (m3), undoing m2 leaves A+B+D and C.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select, union_all, update
from sqlalchemy.orm import Session

from lianjie.crypto import PiiCipher
from lianjie.db import utcnow
from lianjie.domain_events import publish
from lianjie.errors import Conflict, NotFound, ValidationFailed
from lianjie.identity.config import load_config, save_config
from lianjie.identity.events import MergeUndone
from lianjie.identity.identifiers import normalise
from lianjie.identity.models import Identifier, IdentityConflict, Merge, Profile
from lianjie.identity.resolution import lock_identity_graph
from lianjie.identity.schemas import SuspiciousValue
from lianjie.identity.service import identifier_value, mask, members, root_of
from lianjie.pagination import paginate


def list_merges(session: Session, tenant_id: int, *, profile_id: int | None = None,
                include_undone: bool = True, limit: int = 100, offset: int = 0) -> tuple[Sequence[Merge], int]:
    """A page of the merchant's merges, newest first, and how many match (``profile_id``: the
    merges of that profile's customer, its merged profiles' included)."""
    query = select(Merge).where(Merge.tenant_id == tenant_id)
    if profile_id is not None:
        ids = [p.id for p in members(session, tenant_id, root_of(session, tenant_id, profile_id))]
        query = query.where(Merge.survivor_id.in_(ids) | Merge.merged_id.in_(ids))
    if not include_undone:
        query = query.where(Merge.undone_at.is_(None))
    return paginate(session, query.order_by(Merge.id.desc()), limit, offset)


def _root(session: Session, profile_id: int) -> int:
    merged_into = session.scalar(select(Profile.merged_into_id).where(Profile.id == profile_id))
    return merged_into or profile_id


def unmerge(session: Session, tenant_id: int, merge_id: int, reason: str = "operator") -> Merge:
    """Undo one merge (see the module docstring); undoing it twice is refused as a conflict."""
    lock_identity_graph(session, tenant_id)
    merge = session.scalar(select(Merge).where(Merge.tenant_id == tenant_id, Merge.id == merge_id))
    if merge is None:
        raise NotFound(f"no merge {merge_id}", code="merge_not_found")
    if merge.undone_at is not None:
        raise Conflict(f"merge {merge_id} was already undone at {merge.undone_at.isoformat()}",
                       code="already_undone")
    customer = _root(session, merge.survivor_id)
    still_together = set(session.scalars(select(Profile.id).where(
        Profile.id.in_(merge.moved_ids), func.coalesce(Profile.merged_into_id, Profile.id) == customer)))
    others = sorted(still_together - {merge.merged_id})
    if others:
        session.execute(update(Profile).where(Profile.id.in_(others)).values(merged_into_id=merge.merged_id))
    if merge.merged_id in still_together:
        session.execute(update(Profile).where(Profile.id == merge.merged_id).values(merged_into_id=None))
    merge.undone_at = utcnow()
    merge.undone_reason = reason[:200]
    session.flush()
    publish(session, MergeUndone(tenant_id, merge.id, customer, merge.merged_id))
    return merge


def list_conflicts(session: Session, tenant_id: int, *, open_only: bool = True, limit: int = 100,
                   offset: int = 0) -> tuple[Sequence[IdentityConflict], int]:
    """A page of the merchant's conflicts (``open_only``: not resolved yet), newest first, and how many match."""
    query = select(IdentityConflict).where(IdentityConflict.tenant_id == tenant_id)
    if open_only:
        query = query.where(IdentityConflict.resolved_at.is_(None))
    return paginate(session, query.order_by(IdentityConflict.id.desc()), limit, offset)


def resolve_conflict(session: Session, tenant_id: int, conflict_id: int) -> IdentityConflict:
    conflict = session.scalar(select(IdentityConflict).where(IdentityConflict.tenant_id == tenant_id,
                                                             IdentityConflict.id == conflict_id))
    if conflict is None:
        raise NotFound(f"no conflict {conflict_id}", code="conflict_not_found")
    conflict.resolved_at = conflict.resolved_at or utcnow()
    session.flush()
    return conflict


def suspicious_values(session: Session, cipher: PiiCipher, tenant_id: int, *, days: int = 7,
                      min_merges: int = 5) -> list[SuspiciousValue]:
    """Identifier values that caused many merges lately: a new cashier placeholder, a shared device …"""
    since = utcnow() - dt.timedelta(days=days)
    live = (Merge.tenant_id == tenant_id) & (Merge.created_at >= since) & Merge.undone_at.is_(None)
    links = union_all(
        select(Merge.id.label("merge_id"), Merge.cause_identifier_id.label("identifier_id"),
               Merge.created_at.label("at")).where(live),
        select(Merge.id, Merge.via_identifier_id, Merge.created_at).where(live)).subquery()
    count = func.count(func.distinct(links.c.merge_id))
    rows = session.execute(
        select(links.c.identifier_id, count, func.min(links.c.at), func.max(links.c.at))
        .where(links.c.identifier_id.is_not(None)).group_by(links.c.identifier_id)
        .having(count >= min_merges).order_by(count.desc())).all()
    out = []
    for identifier_id, count, first, last in rows:
        ident = session.get(Identifier, identifier_id)
        if ident is None:
            continue
        out.append(SuspiciousValue(type=ident.type, value=mask(ident.type, identifier_value(cipher, ident)),
                                   identifier_id=ident.id, merges=count, profiles=count + 1,
                                   first_merge_at=first, last_merge_at=last))
    return out


def block_value(session: Session, cipher: PiiCipher, tenant_id: int, type_: str, raw: str, *,
                undo_merges: bool) -> list[Merge]:
    """Block a value for linking from now on, and optionally undo every merge it caused (newest first)."""
    config = load_config(session, tenant_id)
    if type_ != "*" and type_ not in config.types:
        raise ValidationFailed(f"unknown identifier type {type_!r}", field="type")
    value = raw.strip().lower() if type_ == "*" else normalise(type_, raw)
    if value is None:
        raise ValidationFailed(f"{raw!r} is not a usable {type_}", field="value")
    doc = config.to_json()
    doc["blocked"][type_] = sorted(set(doc["blocked"].get(type_, [])) | {value})
    save_config(session, tenant_id, doc)
    if not undo_merges or type_ == "*":
        return []
    ident = session.scalar(select(Identifier).where(Identifier.tenant_id == tenant_id, Identifier.type == type_,
                                                    Identifier.value_hash == cipher.lookup_hash(type_, value)))
    if ident is None:
        return []
    caused = session.scalars(select(Merge).where(
        Merge.tenant_id == tenant_id, Merge.undone_at.is_(None),
        (Merge.cause_identifier_id == ident.id) | (Merge.via_identifier_id == ident.id),
    ).order_by(Merge.id.desc())).all()
    return [unmerge(session, tenant_id, m.id, reason=f"blocked {type_}") for m in caused]
