"""Undoing merges, reviewing conflicts, and catching placeholder values that merge strangers.

Undoing merge *m* (``merged_id`` and the profiles it brought, into ``survivor_id``) puts back every
profile it moved that is still with the survivor's customer: it points to ``merged_id`` again, and
``merged_id`` becomes a customer of its own. Later merges are untouched, so a chain can be undone in
the middle: after A+B (m1), A+C (m2), A+D (m3), undoing m2 leaves A+B+D and C.

Every write here is an operator's review decision and is recorded in the audit log
(``tenants.audit``) in the same transaction; the values in it are masked as the API shows them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, union_all, update
from sqlalchemy.orm import Session

from lianjie.crypto import PiiCipher
from lianjie.db import utcnow
from lianjie.domain_events import publish
from lianjie.errors import Conflict, NotFound, ValidationFailed
from lianjie.identity.config import IdentityConfig, load_config, save_config
from lianjie.identity.events import MergeUndone
from lianjie.identity.identifiers import is_pii, normalise
from lianjie.identity.models import Identifier, IdentityConflict, Merge, Profile
from lianjie.identity.resolution import lock_identity_graph
from lianjie.identity.schemas import Decision, SuspiciousValue
from lianjie.identity.service import identifier_value, mask, members, root_of
from lianjie.pagination import paginate
from lianjie.tenants import audit


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
    audit.record(session, tenant_id, "identity_merge.undo", f"merge:{merge.id}", before={"undone": False},
                 after={"undone": True, "survivor_id": merge.survivor_id, "merged_id": merge.merged_id,
                        "moved_ids": merge.moved_ids, "reason": merge.undone_reason})
    return merge


def list_conflicts(session: Session, tenant_id: int, *, open_only: bool = True, limit: int = 100,
                   offset: int = 0) -> tuple[Sequence[IdentityConflict], int]:
    """A page of the merchant's conflicts (``open_only``: not resolved yet), newest first, and how many match."""
    query = select(IdentityConflict).where(IdentityConflict.tenant_id == tenant_id)
    if open_only:
        query = query.where(IdentityConflict.resolved_at.is_(None))
    return paginate(session, query.order_by(IdentityConflict.id.desc()), limit, offset)


def resolve_conflict(session: Session, cipher: PiiCipher, tenant_id: int, conflict_id: int, decision: Decision,
                     note: str | None = None) -> IdentityConflict:
    """Close a conflict with an operator's decision, once; the same decision again returns it unchanged.

    The identifier a refused merge was about is stored on one customer only, the one that held it
    before the message (the second of ``profile_ids``); the message's customer never got it.

    - ``keep``: nothing changes. The operator says the holder is right (a cashier typed the wrong
      customer's phone, say); the next message tying the two again is a new conflict.
    - ``split``: the identifier is detached from the customer holding it and put on a new profile of
      its own. The conflict shows two customers who cannot be one person presenting the same value
      (a recycled phone number, a shared family device), so it no longer says who either of them is:
      the holder keeps its events (they stay with the profiles they were attributed to), its other
      identifiers and merges; neither customer is identified by the value any more. Unlike
      ``block_value`` the value still links in future: the next message carrying it with a
      customer's identifier merges the new profile into that customer, logged and undoable like any
      merge (so a recycled number follows its new owner).
    - ``block_value``: the value is blocked for the merchant and every merge it caused is undone,
      exactly as ``POST /api/v1/identity/blocked`` does: it links no one any more.

    A conflict about a new identifier that was left unlinked has no stored identifier: only ``keep``
    applies (422 otherwise). Another decision on a resolved conflict is a 409.
    """
    lock_identity_graph(session, tenant_id)
    conflict = session.scalar(select(IdentityConflict).where(IdentityConflict.tenant_id == tenant_id,
                                                             IdentityConflict.id == conflict_id).with_for_update())
    if conflict is None:
        raise NotFound(f"no conflict {conflict_id}", code="conflict_not_found")
    if conflict.resolved_at is not None:
        if conflict.decision == decision.value:
            return conflict
        raise Conflict(f"conflict {conflict_id} was already resolved with {conflict.decision or 'no decision'!r} "
                       f"at {conflict.resolved_at.isoformat()}; it cannot be resolved again with {decision.value!r}",
                       code="conflict_already_resolved", field="body.decision",
                       details={"decision": conflict.decision})
    if decision is Decision.KEEP:
        outcome: dict[str, Any] = {}
    else:
        ident = _conflict_identifier(session, conflict, decision)
        outcome = _split(session, ident) if decision is Decision.SPLIT else _block_for(session, cipher, ident)
    conflict.decision = decision.value
    conflict.resolved_at = utcnow()
    conflict.resolved_by = audit.actor_of(session)
    conflict.note = note
    conflict.outcome = outcome
    session.flush()
    audit.record(session, tenant_id, "identity_conflict.resolve", f"identity_conflict:{conflict.id}",
                 before={"resolved": False},
                 after={"decision": decision.value, "note": note, "profile_ids": conflict.profile_ids, **outcome})
    return conflict


def _conflict_identifier(session: Session, conflict: IdentityConflict, decision: Decision) -> Identifier:
    ident = None if conflict.identifier_id is None else session.scalar(select(Identifier).where(
        Identifier.tenant_id == conflict.tenant_id, Identifier.id == conflict.identifier_id))
    if ident is None:
        why = ("it is about a new identifier that was left unlinked, so none is stored"
               if conflict.identifier_id is None and conflict.identifier_type is None
               else "its identifier is no longer stored (erased, or recorded before lianjie kept it)")
        raise ValidationFailed(f"conflict {conflict.id} cannot be resolved with {decision.value!r}: {why}; "
                               "'keep' closes it, and POST /api/v1/identity/blocked blocks a value you know",
                               code="decision_not_applicable", field="body.decision")
    return ident


def _split(session: Session, ident: Identifier) -> dict[str, Any]:
    """Move ``ident`` from its base profile to a new profile of its own (see :func:`resolve_conflict`)."""
    holder = _root(session, ident.profile_id)
    alone = Profile(tenant_id=ident.tenant_id, traits={}, event_count=0)
    session.add(alone)
    session.flush()
    moved_from = ident.profile_id
    ident.profile_id = alone.id
    session.flush()
    return {"identifier_type": ident.type, "detached_from_customer": holder, "detached_from_profile": moved_from,
            "new_profile_id": alone.id}


def _block_for(session: Session, cipher: PiiCipher, ident: Identifier) -> dict[str, Any]:
    undone = _block(session, cipher, ident.tenant_id, ident.type, identifier_value(cipher, ident), undo_merges=True)
    return {"identifier_type": ident.type, "blocked": mask(ident.type, identifier_value(cipher, ident)),
            "undone_merges": [m.id for m in undone]}


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
    return _block(session, cipher, tenant_id, type_, value, undo_merges=undo_merges)


def _block(session: Session, cipher: PiiCipher, tenant_id: int, type_: str, value: str, *,
           undo_merges: bool) -> list[Merge]:
    """Block an already normalised value (a stored identifier's is)."""
    lock_identity_graph(session, tenant_id)
    doc = load_config(session, tenant_id).to_json()
    doc["blocked"][type_] = sorted(set(doc["blocked"].get(type_, [])) | {value})
    save_config(session, tenant_id, doc)
    undone = _undo_caused(session, cipher, tenant_id, type_, value) if undo_merges and type_ != "*" else []
    audit.record(session, tenant_id, "identity.block", f"identity_blocked:{type_}",
                 after={"type": type_, "value": _masked(type_, value), "undone_merges": [m.id for m in undone]})
    return undone


def _undo_caused(session: Session, cipher: PiiCipher, tenant_id: int, type_: str, value: str) -> list[Merge]:
    ident = session.scalar(select(Identifier).where(Identifier.tenant_id == tenant_id, Identifier.type == type_,
                                                    Identifier.value_hash == cipher.lookup_hash(type_, value)))
    if ident is None:
        return []
    caused = session.scalars(select(Merge).where(
        Merge.tenant_id == tenant_id, Merge.undone_at.is_(None),
        (Merge.cause_identifier_id == ident.id) | (Merge.via_identifier_id == ident.id),
    ).order_by(Merge.id.desc())).all()
    return [unmerge(session, tenant_id, m.id, reason=f"blocked {type_}") for m in caused]


def update_settings(session: Session, tenant_id: int, doc: dict[str, Any]) -> IdentityConfig:
    """Replace the merchant's identity rules (``PUT /api/v1/identity/settings``), recorded in the audit
    log: the types whose rules changed, and the blocked values added and removed (masked)."""
    before = load_config(session, tenant_id)
    after = save_config(session, tenant_id, doc)
    changed = sorted(t for t in set(before.types) | set(after.types) if before.types.get(t) != after.types.get(t))
    kinds = sorted(set(before.blocked) | set(after.blocked))
    added = {k: sorted(_masked(k, v) for v in after.blocked.get(k, frozenset()) - before.blocked.get(k, frozenset()))
             for k in kinds}
    removed = {k: sorted(_masked(k, v) for v in before.blocked.get(k, frozenset()) - after.blocked.get(k, frozenset()))
               for k in kinds}
    audit.record(session, tenant_id, "identity_settings.update", "identity_settings",
                 before={"types": {t: _rule(before, t) for t in changed}},
                 after={"types": {t: _rule(after, t) for t in changed},
                        "blocked_added": {k: v for k, v in added.items() if v},
                        "blocked_removed": {k: v for k, v in removed.items() if v}})
    return after


def _rule(config: IdentityConfig, type_: str) -> dict[str, int] | None:
    rule = config.types.get(type_)
    return None if rule is None else {"priority": rule.priority, "limit": rule.limit}


def _masked(type_: str, value: str) -> str:
    """A blocked value as the audit log keeps it: personal ones (phone, email) masked."""
    return mask(type_, value) if is_pii(type_) else value
