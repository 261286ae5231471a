"""The ingestion pipeline: validate, drop repeats, resolve identities, store, in one transaction.

A batch is all-or-nothing in storage (one transaction) but not in validation: a bad message is
reported with its index and field and the good ones are stored. A message whose ``messageId`` was
already stored for the merchant is acknowledged again and stored once, which makes every client
retry safe.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from lianjie.crypto import PiiCipher
from lianjie.db import insert_ignoring_duplicates
from lianjie.identity import pii
from lianjie.identity.config import load_config
from lianjie.identity.identifiers import Ident, extract
from lianjie.identity.models import Event, Identifier
from lianjie.identity.resolution import BatchResolver
from lianjie.identity.traits import Touch, apply_touches
from lianjie.ingest.messages import MAX_MESSAGE_BYTES, Invalid, Message, validate

EVENTS: Table = Event.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Rejected:
    index: int
    field: str
    message: str


@dataclass
class BatchResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    merges: int = 0
    conflicts: int = 0


@dataclass
class Source:
    """Who sent the batch: the merchant and the write key's source name."""

    tenant_id: int
    name: str | None


def check_messages(raws: Sequence[Any], *, implied_type: str | None, batch_sent_at: dt.datetime | None,
                   received_at: dt.datetime) -> tuple[list[Message], list[Rejected]]:
    """Validate every message; the good ones keep their order."""
    good, bad = [], []
    for index, raw in enumerate(raws):
        try:
            if len(orjson.dumps(raw)) > MAX_MESSAGE_BYTES:
                raise Invalid("", f"message is larger than {MAX_MESSAGE_BYTES // 1024} KB")
            good.append(validate(raw, implied_type=implied_type, batch_sent_at=batch_sent_at,
                                 received_at=received_at))
        except Invalid as exc:
            bad.append(Rejected(index, exc.field, exc.message))
    return good, bad


def _new_messages(session: Session, tenant_id: int, messages: list[Message]) -> list[Message]:
    """Messages not stored before and not repeated earlier in the same batch."""
    ids = list({m.message_id for m in messages})
    stored: set[str] = set()
    for start in range(0, len(ids), 500):
        stored.update(session.scalars(select(Event.message_id).where(
            Event.tenant_id == tenant_id, Event.message_id.in_(ids[start:start + 500]))))
    fresh, seen = [], set(stored)
    for message in messages:
        if message.message_id not in seen:
            seen.add(message.message_id)
            fresh.append(message)
    return fresh


def _alias_identifiers(session: Session, tenant_id: int, message: Message, idents: list[Ident],
                       cipher: PiiCipher) -> list[Ident]:
    """``alias`` ties ``previousId`` (an earlier userId, or else an anonymousId) to the new userId."""
    previous = str(message.raw["previousId"])
    as_user = Ident("user_id", previous, cipher.lookup_hash("user_id", previous))
    known_user = session.scalar(select(Identifier.id).where(Identifier.tenant_id == tenant_id,
                                                            Identifier.type == "user_id",
                                                            Identifier.value_hash == as_user.hash))
    if known_user is not None:
        return [*idents, as_user]
    return [*idents, Ident("anonymous_id", previous, cipher.lookup_hash("anonymous_id", previous))]


def _message_traits(raw: dict[str, Any]) -> dict[str, Any]:
    traits: dict[str, Any] = {}
    context = raw.get("context") or {}
    if isinstance(context.get("traits"), dict):
        traits.update(context["traits"])
    if raw["type"] == "identify" and isinstance(raw.get("traits"), dict):
        traits.update(raw["traits"])
    return traits


def store(session: Session, cipher: PiiCipher, source: Source, messages: list[Message],
          received_at: dt.datetime) -> BatchResult:
    """Resolve and store valid messages (the caller owns the transaction)."""
    result = BatchResult()
    fresh = _new_messages(session, source.tenant_id, messages)
    result.duplicates = len(messages) - len(fresh)
    if not fresh:
        return result
    config = load_config(session, source.tenant_id)
    idents = [extract(m.raw, config, cipher) for m in fresh]
    for i, message in enumerate(fresh):
        if message.type == "alias":
            idents[i] = _alias_identifiers(session, source.tenant_id, message, idents[i], cipher)
    resolver = BatchResolver(session, source.tenant_id, config, cipher)
    resolver.prefetch(i for group in idents for i in group)
    profiles = []
    for message, group in zip(fresh, idents, strict=True):
        resolution = resolver.resolve(group, message.message_id, message.timestamp,
                                      relax=frozenset({"user_id"}) if message.type == "alias" else frozenset())
        profiles.append(resolution.profile_id)
        result.merges += len(resolution.merged)
        result.conflicts += resolution.conflicts
    real = resolver.flush()
    rows: list[dict[str, Any]] = []
    touches: dict[int, Touch] = {}
    for message, temp_profile in zip(fresh, profiles, strict=True):
        profile_id = real.get(temp_profile, temp_profile) if temp_profile is not None else None
        clean, personal = pii.split(message.raw)
        rows.append({"tenant_id": source.tenant_id, "message_id": message.message_id, "type": message.type,
                     "event": _event_name(message.raw), "profile_id": profile_id, "user_id": message.user_id,
                     "anonymous_id": message.anonymous_id, "source": source.name, "timestamp": message.timestamp,
                     "original_timestamp": message.original_timestamp, "sent_at": message.sent_at,
                     "received_at": received_at, "payload": clean, "pii_encrypted": pii.seal(cipher, personal)})
        if profile_id is not None:
            touch = touches.setdefault(profile_id, Touch(message.timestamp, message.timestamp))
            touch.add(message.timestamp, _message_traits(message.raw))
    session.execute(insert_ignoring_duplicates(session, EVENTS, ["tenant_id", "message_id"]), rows)
    apply_touches(session, cipher, touches)
    result.accepted = len(fresh)
    return result


def _event_name(raw: dict[str, Any]) -> str | None:
    name = raw.get("event") if raw["type"] == "track" else raw.get("name")
    return str(name)[:200] if name is not None else None
