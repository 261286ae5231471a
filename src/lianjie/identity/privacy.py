"""Consent and the PIPL rights: export everything held about a person, and erase it.

Erasure removes what identifies the person (identifiers, traits, personal event fields, tags,
consent) and keeps anonymous aggregates (event counts, event types and times, order-like
properties), so a merchant's totals do not change. The keyed hashes of the erased identifiers are
kept on a suppression list: if one arrives again, it starts a *new* profile flagged
``reappeared_after_erasure`` rather than quietly rebuilding the old customer.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from lianjie.crypto import PiiCipher
from lianjie.db import utcnow
from lianjie.identity import export as export_sections
from lianjie.identity.models import Consent, ErasedIdentifier, Event, Identifier, Merge, Profile, ProfileTag
from lianjie.identity.resolution import lock_identity_graph
from lianjie.identity.schemas import ConsentIn, ConsentOut
from lianjie.identity.service import current_consent, members, root_of
from lianjie.tenants import audit


def record_consent(session: Session, tenant_id: int, profile_id: int, decision: ConsentIn) -> list[ConsentOut]:
    """Append a consent decision (history is kept); returns the customer's current consent.

    Repeating the current decision from the same source adds nothing, so a retried request is safe.
    """
    root = root_of(session, tenant_id, profile_id)
    ids = [p.id for p in members(session, tenant_id, root)]
    current = {(c.purpose, c.channel): c for c in current_consent(session, ids)}
    latest = current.get((decision.purpose.value, decision.channel.value))
    repeated = latest is not None and latest.granted == decision.granted and latest.source == decision.source \
        and (decision.recorded_at is None or latest.recorded_at == decision.recorded_at)
    if not repeated:
        session.add(Consent(tenant_id=tenant_id, profile_id=root, purpose=decision.purpose.value,
                            channel=decision.channel.value, granted=decision.granted, source=decision.source,
                            recorded_at=decision.recorded_at or utcnow()))
        session.flush()
    return current_consent(session, ids)


def export(session: Session, cipher: PiiCipher, tenant_id: int, profile_id: int) -> dict[str, Any]:
    """Everything held about the person, personal fields decrypted (PIPL art. 45): every domain's
    section (identity/export.py says how they are gathered)."""
    return export_sections.export(session, cipher, tenant_id, profile_id)


def _anonymous_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """What an erased event keeps: its kind, time and non-personal properties."""
    kept: dict[str, Any] = {k: payload[k] for k in ("type", "event", "name", "timestamp") if k in payload}
    if isinstance(payload.get("properties"), dict):
        kept["properties"] = payload["properties"]
    return kept


def erase(session: Session, cipher: PiiCipher, tenant_id: int, profile_id: int) -> dict[str, int]:
    """Erase the person behind ``profile_id`` (all of its merged profiles); safe to repeat."""
    lock_identity_graph(session, tenant_id)
    root = root_of(session, tenant_id, profile_id)
    ids = [p.id for p in members(session, tenant_id, root)]
    identifiers = session.scalars(select(Identifier).where(Identifier.profile_id.in_(ids))).all()
    suppressed = set(session.execute(select(ErasedIdentifier.type, ErasedIdentifier.value_hash)
                                     .where(ErasedIdentifier.tenant_id == tenant_id)).all())
    for ident in identifiers:
        if (ident.type, ident.value_hash) not in suppressed:
            session.add(ErasedIdentifier(tenant_id=tenant_id, type=ident.type, value_hash=ident.value_hash))
    # Merges keep pointing at identifiers only by id; drop those links before the identifiers go.
    session.execute(update(Merge).where(Merge.cause_identifier_id.in_([i.id for i in identifiers]))
                    .values(cause_identifier_id=None))
    session.execute(update(Merge).where(Merge.via_identifier_id.in_([i.id for i in identifiers]))
                    .values(via_identifier_id=None))
    session.execute(delete(Identifier).where(Identifier.id.in_([i.id for i in identifiers])))
    events = session.scalars(select(Event).where(Event.tenant_id == tenant_id, Event.profile_id.in_(ids))).all()
    for event in events:
        event.payload = _anonymous_payload(event.payload)
        event.pii_encrypted = None
        event.user_id = None
        event.anonymous_id = None
    session.execute(delete(ProfileTag).where(ProfileTag.profile_id.in_(ids)))
    session.execute(delete(Consent).where(Consent.profile_id.in_(ids)))
    now = utcnow()
    session.execute(update(Profile).where(Profile.id.in_(ids)).values(
        traits={}, pii_traits_encrypted=None, erased_at=now))
    session.flush()
    counts = {"profiles": len(ids), "identifiers": len(identifiers), "events_anonymised": len(events)}
    # Who asked and what went, never who it was: the ids and the counts only.
    audit.record(session, tenant_id, "profile.erase", f"profile:{root}", after={"profile_ids": ids, **counts})
    return counts
