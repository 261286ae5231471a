"""Recording events against customers: the write path every source of events shares.

Tracking calls (``ingest``) and, later, orders from tills and shops (``commerce``) become events the
same way: identifiers are found and PII is sealed before any lock is taken (:func:`prepare`), then,
holding the merchant's identity-graph lock, repeats are dropped by messageId, identities resolved,
events written and profiles' activity and traits updated (:func:`store_prepared`).

Everything that does not need the stored graph is done in :func:`prepare`, because only one writer of
a database (SQLite) or of a merchant's graph (PostgreSQL) runs :func:`store_prepared` at a time: its
cost per event bounds how many events a second the whole server can take.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Table
from sqlalchemy.orm import Session

from lianjie.crypto import PiiCipher
from lianjie.db import driver_insert, is_sqlite, json_param, rows_by_key, sqlite_time
from lianjie.domain_events import publish
from lianjie.identity import pii
from lianjie.identity.config import IdentityConfig, load_config
from lianjie.identity.events import EventsTracked
from lianjie.identity.identifiers import Ident, by_priority, extract
from lianjie.identity.models import Event
from lianjie.identity.resolution import ALIAS_RELAXES, BatchResolver, lock_identity_graph
from lianjie.identity.traits import Touch, apply_touches, stamp

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


@dataclass(slots=True)
class Prepared:
    """A message made ready for storage before any lock is taken: identifiers found and ordered, PII
    sealed, the payload serialised and the times in the database's own form.

    The event's column values in :data:`_EVENT_COLUMNS` order are ``head``, then ``profile_id``
    (decided under the lock), then ``tail``. ``stamp`` is the event time as traits record it, set
    when the message carries traits. ``size`` is the message's JSON in bytes (its stored payload and
    its personal fields), which a tracking call limits.
    """

    message_id: str
    type: str
    timestamp: dt.datetime
    idents: list[Ident]
    head: tuple[Any, ...]
    tail: tuple[Any, ...]
    traits: dict[str, Any]
    stamp: str | None = None
    previous_id: str | None = None
    size: int = 0
    maybe_nul: bool = False  # its JSON holds an escaped NUL (``\\u0000``), which no text column takes

    @property
    def stored_time(self) -> Any:
        """The event time as its row stores it (the ``timestamp`` column, first of ``tail``'s times)."""
        return self.tail[3]


_EVENT_COLUMNS = ("tenant_id", "message_id", "type", "event", "profile_id", "user_id", "anonymous_id", "source",
                  "timestamp", "original_timestamp", "sent_at", "received_at", "payload", "pii_encrypted")


def _new_message_ids(session: Session, tenant_id: int, message_ids: list[str]) -> set[str]:
    """Those of ``message_ids`` not stored before for this merchant."""
    ids = set(message_ids)
    stored = rows_by_key(session, "SELECT message_id FROM events WHERE tenant_id = ? AND message_id {key}",
                         (tenant_id,), list(ids))
    return ids - {row[0] for row in stored}


def _with_aliases(session: Session, tenant_id: int, config: IdentityConfig, items: list[Prepared],
                  cipher: PiiCipher) -> list[list[Ident]]:
    """Each item's identifiers, strongest first; an ``alias`` also gets its ``previousId``, as an
    earlier userId if one is stored, or else as an anonymousId.

    Which of the two is meant depends on what is stored, so it is looked up here, under the write
    lock, with one statement for the whole batch (a userId first seen in this same batch is not
    stored yet, as it was not with one look-up per message). Prepared items are left untouched, as a
    retry may use them again.
    """
    previous = {item.message_id: item.previous_id for item in items if item.previous_id is not None}
    if not previous:
        return [item.idents for item in items]
    as_user = {value: Ident("user_id", value, cipher.lookup_hash("user_id", value)) for value in previous.values()}
    stored = {row[0] for row in rows_by_key(
        session, "SELECT value_hash FROM identifiers WHERE tenant_id = ? AND type = 'user_id' AND value_hash {key}",
        (tenant_id,), [ident.hash for ident in as_user.values()])}
    out = []
    for item in items:
        value = previous.get(item.message_id)
        if value is None:
            out.append(item.idents)
            continue
        named = as_user[value]
        if named.hash not in stored:
            named = Ident("anonymous_id", value, cipher.lookup_hash("anonymous_id", value))
        out.append(by_priority([*item.idents, named], config))
    return out


def _message_traits(raw: dict[str, Any]) -> dict[str, Any]:
    context = raw.get("context")
    context_traits = context.get("traits") if context else None
    own = raw.get("traits") if raw["type"] == "identify" else None
    if type(own) is not dict or not own:
        return context_traits if type(context_traits) is dict else {}
    if type(context_traits) is not dict or not context_traits:
        return own
    return {**context_traits, **own}


def prepare(cipher: PiiCipher, config: IdentityConfig, source: Source, messages: list[Message],
            received_at: dt.datetime, *, text_times: bool) -> list[Prepared]:
    """The CPU-bound part of ingestion; it needs no database, so it runs outside the write lock.

    ``text_times``: the database keeps times as text (SQLite), so they are formatted here; otherwise
    the driver takes the datetimes as they are.
    """
    out = []
    memo: dict[Any, Any] = {}
    # A batch shares receivedAt and often sentAt, and a message without sentAt has its original time
    # as its time (the same object), so each distinct moment is formatted once.
    formatted: dict[dt.datetime | None, Any] = {None: None}
    when = sqlite_time if text_times else _same
    received = when(received_at)
    tenant_id, source_name = source.tenant_id, source.name
    for message in messages:
        raw = message.raw
        clean, personal = pii.split(raw)
        timestamp, original, sent_at = message.timestamp, message.original_timestamp, message.sent_at
        at = when(timestamp)
        if original is not timestamp and original not in formatted:
            formatted[original] = when(original)
        if sent_at not in formatted:
            formatted[sent_at] = when(sent_at)
        payload = orjson.dumps(clean)
        personal_json = orjson.dumps(personal) if personal else b""
        tail = (message.user_id, message.anonymous_id, source_name, at, at if original is timestamp
                else formatted[original], formatted[sent_at], received, payload.decode(),
                cipher.encrypt(personal_json) if personal else None)
        traits = _message_traits(raw)
        type_ = message.type
        out.append(Prepared(message.message_id, type_, timestamp, extract(raw, config, cipher, memo),
                            (tenant_id, message.message_id, type_, _event_name(raw, type_)), tail, traits,
                            stamp(timestamp) if traits else None,
                            str(raw["previousId"]) if type_ == "alias" else None, len(payload) + len(personal_json),
                            _NUL in payload or _NUL in personal_json))
    return out


def _same(value: Any) -> Any:
    return value


# How JSON writes a NUL character. Found in a message's JSON (one byte search, no walk over the
# message), the caller looks for the field: it may also be an escaped backslash before "u0000".
_NUL = b"\\u0000"


def store(session: Session, cipher: PiiCipher, source: Source, messages: list[Message],
          received_at: dt.datetime) -> StoreResult:
    """Prepare, resolve and store valid messages in the caller's transaction."""
    config = load_config(session, source.tenant_id)
    prepared = prepare(cipher, config, source, messages, received_at, text_times=is_sqlite(session))
    return store_prepared(session, cipher, config, source, prepared)


def store_prepared(session: Session, cipher: PiiCipher, config: IdentityConfig, source: Source,
                   prepared: list[Prepared]) -> StoreResult:
    """Resolve identities and write events; this is the part that holds the write lock."""
    lock_identity_graph(session, source.tenant_id)
    result = StoreResult()
    new_ids = _new_message_ids(session, source.tenant_id, [p.message_id for p in prepared])
    fresh = []
    for item in prepared:
        if item.message_id in new_ids:
            new_ids.discard(item.message_id)  # a repeat later in the same batch is a duplicate
            fresh.append(item)
    result.duplicates = len(prepared) - len(fresh)
    if not fresh:
        return result
    idents = _with_aliases(session, source.tenant_id, config, fresh, cipher)
    resolver = BatchResolver(session, source.tenant_id, config, cipher)
    resolver.prefetch(i for group in idents for i in group)
    resolve = resolver.resolve
    profiles = [resolve(group, item.message_id, item.timestamp, ALIAS_RELAXES if item.type == "alias" else None)
                for item, group in zip(fresh, idents, strict=True)]
    result.merges, result.conflicts = resolver.merge_count, resolver.conflict_count
    real = resolver.flush()
    touches: dict[int, Touch] = {}
    rows = []
    attributed = result.profiles
    tracked: list[tuple[int, str, str]] = []
    for item, temp_profile in zip(fresh, profiles, strict=True):
        profile_id = real.get(temp_profile, temp_profile) if temp_profile is not None else None
        attributed[item.message_id] = profile_id
        rows.append((*item.head, profile_id, *item.tail))
        if profile_id is not None:
            if item.type == "track" and item.head[3] is not None:
                tracked.append((profile_id, item.head[3], item.message_id))
            touch = touches.get(profile_id)
            stored_time = item.stored_time
            if touch is None:
                touch = touches[profile_id] = Touch(stored_time, stored_time)
            touch.add(stored_time, item.traits, item.stamp)
    # No ON CONFLICT: the messageIds were found new under the identity-graph lock, which every
    # writer of the merchant's events holds, and repeats within the batch were dropped above.
    values = "(" + ", ".join(["?"] * 12 + [json_param(session), "?"]) + ")"
    driver_insert(session, f"events ({', '.join(_EVENT_COLUMNS)})", values, rows)
    apply_touches(session, cipher, touches)
    result.accepted = len(fresh)
    if tracked:
        publish(session, EventsTracked(source.tenant_id, tuple(tracked)))
    return result


def _event_name(raw: dict[str, Any], type_: str) -> str | None:
    name = raw.get("event") if type_ == "track" else raw.get("name")
    return str(name)[:200] if name is not None else None
