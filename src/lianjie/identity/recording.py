"""Recording events against customers: the write path every source of events shares.

Tracking calls (``ingest``) and, later, orders from tills and shops (``commerce``) become events the
same way: identifiers are found and PII is sealed before any lock is taken (:func:`prepare`), then,
holding the merchant's identity-graph lock, repeats are dropped by messageId, identities resolved,
events written and profiles' activity and traits updated (:func:`store_prepared`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from lianjie.crypto import PiiCipher
from lianjie.db import driver_execute, driver_insert, in_values, is_sqlite, json_param, json_text, sqlite_time
from lianjie.identity import pii
from lianjie.identity.config import IdentityConfig, load_config
from lianjie.identity.identifiers import Ident, extract
from lianjie.identity.models import Event
from lianjie.identity.resolution import BatchResolver, lock_identity_graph
from lianjie.identity.traits import Touch, apply_touches

EVENTS: Table = Event.__table__  # type: ignore[assignment]


@dataclass(slots=True)
class Message:
    """A valid message with its times resolved."""

    raw: dict[str, Any]
    type: str
    message_id: str
    user_id: str | None
    anonymous_id: str | None
    timestamp: dt.datetime
    original_timestamp: dt.datetime | None
    sent_at: dt.datetime | None


@dataclass
class Source:
    """Who sent the events: the merchant and the source's name (the write key's, or 'pos' …)."""

    tenant_id: int
    name: str | None


@dataclass
class StoreResult:
    accepted: int = 0
    duplicates: int = 0
    merges: int = 0
    conflicts: int = 0
    # messageId -> the base profile the message was attributed to (None: it carried no identifier).
    # Only messages stored by this call appear; a repeat was attributed when first stored.
    profiles: dict[str, int | None] = field(default_factory=dict)


def _new_message_ids(session: Session, tenant_id: int, message_ids: list[str]) -> set[str]:
    """Those of ``message_ids`` not stored before for this merchant."""
    ids = list(set(message_ids))
    stored: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        where, params = in_values(session, "message_id", chunk)
        sql = f"SELECT message_id FROM events WHERE tenant_id = ? AND {where}"
        stored.update(row[0] for row in driver_execute(session, sql, (tenant_id, *params)))
    return set(ids) - stored


def _with_aliases(session: Session, tenant_id: int, items: list[Prepared], cipher: PiiCipher) -> list[list[Ident]]:
    """Each item's identifiers; an ``alias`` also gets its ``previousId``, as an earlier userId if one
    is stored, or else as an anonymousId.

    Which of the two is meant depends on what is stored, so it is looked up here, under the write
    lock, with one statement for the whole batch (a userId first seen in this same batch is not
    stored yet, as it was not with one look-up per message). Prepared items are left untouched, as a
    retry may use them again.
    """
    previous = {item.message.message_id: str(item.message.raw["previousId"])
                for item in items if item.message.type == "alias"}
    if not previous:
        return [item.idents for item in items]
    as_user = {value: Ident("user_id", value, cipher.lookup_hash("user_id", value)) for value in previous.values()}
    hashes = [ident.hash for ident in as_user.values()]
    stored: set[str] = set()
    for start in range(0, len(hashes), 500):
        where, params = in_values(session, "value_hash", hashes[start:start + 500])
        stored.update(row[0] for row in driver_execute(
            session, f"SELECT value_hash FROM identifiers WHERE tenant_id = ? AND type = 'user_id' AND {where}",
            (tenant_id, *params)))
    out = []
    for item in items:
        value = previous.get(item.message.message_id) if item.message.type == "alias" else None
        if value is None:
            out.append(item.idents)
        elif as_user[value].hash in stored:
            out.append([*item.idents, as_user[value]])
        else:
            out.append([*item.idents, Ident("anonymous_id", value, cipher.lookup_hash("anonymous_id", value))])
    return out


def _message_traits(raw: dict[str, Any]) -> dict[str, Any]:
    traits: dict[str, Any] = {}
    context = raw.get("context") or {}
    if isinstance(context.get("traits"), dict):
        traits.update(context["traits"])
    if raw["type"] == "identify" and isinstance(raw.get("traits"), dict):
        traits.update(raw["traits"])
    return traits


@dataclass(slots=True)
class Prepared:
    """A message made ready for storage before any lock is taken: identifiers found, PII sealed.

    The event's column values in :data:`_EVENT_COLUMNS` order are ``head``, then ``profile_id``
    (decided under the lock), then ``tail`` (times as datetimes) or ``sqlite_tail`` (times as the
    text SQLite stores); the payload is already JSON text.
    """

    message: Message
    idents: list[Ident]
    head: tuple[Any, ...]
    tail: tuple[Any, ...]
    sqlite_tail: tuple[Any, ...]
    traits: dict[str, Any]


_EVENT_COLUMNS = ("tenant_id", "message_id", "type", "event", "profile_id", "user_id", "anonymous_id", "source",
                  "timestamp", "original_timestamp", "sent_at", "received_at", "payload", "pii_encrypted")


def prepare(cipher: PiiCipher, config: IdentityConfig, source: Source, messages: list[Message],
            received_at: dt.datetime) -> list[Prepared]:
    """The CPU-bound part of ingestion; it needs no database, so it runs outside the write lock."""
    out = []
    memo: dict[Any, Any] = {}
    # SQLite's time texts: a batch shares receivedAt and often sentAt, and a message without sentAt
    # has its original time as its time (the same object), so each distinct moment is formatted once.
    received_text = sqlite_time(received_at)
    sent_texts: dict[dt.datetime | None, str | None] = {None: None}
    for message in messages:
        clean, personal = pii.split(message.raw)
        head = (source.tenant_id, message.message_id, message.type, _event_name(message.raw))
        timestamp, original, sent_at = message.timestamp, message.original_timestamp, message.sent_at
        timestamp_text = sqlite_time(timestamp)
        if sent_at not in sent_texts:
            sent_texts[sent_at] = sqlite_time(sent_at)
        texts = (timestamp_text, timestamp_text if original is timestamp else sqlite_time(original),
                 sent_texts[sent_at], received_text)
        rest = (json_text(clean), pii.seal(cipher, personal))
        ids = (message.user_id, message.anonymous_id, source.name)
        out.append(Prepared(message, extract(message.raw, config, cipher, memo), head,
                            (*ids, timestamp, original, sent_at, received_at, *rest), (*ids, *texts, *rest),
                            _message_traits(message.raw)))
    return out


def store(session: Session, cipher: PiiCipher, source: Source, messages: list[Message],
          received_at: dt.datetime) -> StoreResult:
    """Prepare, resolve and store valid messages in the caller's transaction."""
    config = load_config(session, source.tenant_id)
    return store_prepared(session, cipher, config, source, prepare(cipher, config, source, messages, received_at))


def store_prepared(session: Session, cipher: PiiCipher, config: IdentityConfig, source: Source,
                   prepared: list[Prepared]) -> StoreResult:
    """Resolve identities and write events; this is the part that holds the write lock."""
    lock_identity_graph(session, source.tenant_id)
    result = StoreResult()
    new_ids = _new_message_ids(session, source.tenant_id, [p.message.message_id for p in prepared])
    fresh, seen = [], set()
    for item in prepared:
        if item.message.message_id in new_ids and item.message.message_id not in seen:
            seen.add(item.message.message_id)
            fresh.append(item)
    result.duplicates = len(prepared) - len(fresh)
    if not fresh:
        return result
    idents = _with_aliases(session, source.tenant_id, fresh, cipher)
    resolver = BatchResolver(session, source.tenant_id, config, cipher)
    resolver.prefetch(i for group in idents for i in group)
    profiles = []
    for item, group in zip(fresh, idents, strict=True):
        relax = frozenset({"user_id"}) if item.message.type == "alias" else frozenset()
        resolution = resolver.resolve(group, item.message.message_id, item.message.timestamp, relax=relax)
        profiles.append(resolution.profile_id)
        result.merges += len(resolution.merged)
        result.conflicts += resolution.conflicts
    real = resolver.flush()
    touches: dict[int, Touch] = {}
    rows = []
    sqlite = is_sqlite(session)
    for item, temp_profile in zip(fresh, profiles, strict=True):
        profile_id = real.get(temp_profile, temp_profile) if temp_profile is not None else None
        result.profiles[item.message.message_id] = profile_id
        rows.append((*item.head, profile_id, *(item.sqlite_tail if sqlite else item.tail)))
        if profile_id is not None:
            moment = item.message.timestamp
            touches.setdefault(profile_id, Touch(moment, moment)).add(moment, item.traits)
    # No ON CONFLICT: the messageIds were found new under the identity-graph lock, which every
    # writer of the merchant's events holds, and repeats within the batch were dropped above.
    values = "(" + ", ".join(["?"] * 12 + [json_param(session), "?"]) + ")"
    driver_insert(session, f"events ({', '.join(_EVENT_COLUMNS)})", values, rows)
    apply_touches(session, cipher, touches)
    result.accepted = len(fresh)
    return result


def _event_name(raw: dict[str, Any]) -> str | None:
    name = raw.get("event") if raw["type"] == "track" else raw.get("name")
    return str(name)[:200] if name is not None else None
