"""Profile traits and activity, folded in per base profile with the newest event time winning.

Each trait is stored as ``[value, "event time"]``; an identify that arrives late with an older
timestamp never overwrites a newer value. Personal traits live in the encrypted blob instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from lianjie.crypto import PiiCipher
from lianjie.db import driver_execute, json_param, json_text, time_binder
from lianjie.identity.models import Profile
from lianjie.identity.pii import PII_TRAITS

PROFILES: Table = Profile.__table__  # type: ignore[assignment]


def stamp(moment: dt.datetime) -> str:
    """A fixed-width UTC time text, so stamps compare correctly as strings."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Touch:
    """What one batch did to one base profile."""

    first: dt.datetime
    last: dt.datetime
    count: int = 0
    traits: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, moment: dt.datetime, traits: Mapping[str, Any] | None) -> None:
        self.first, self.last, self.count = min(self.first, moment), max(self.last, moment), self.count + 1
        if traits:
            merge_traits(self.traits, traits, stamp(moment))


def merge_traits(into: dict[str, list[Any]], traits: Mapping[str, Any], at: str) -> bool:
    """Fold ``traits`` seen at time ``at`` into ``into``; returns whether anything changed."""
    changed = False
    for key, value in traits.items():
        current = into.get(key)
        if current is None or current[1] <= at:
            if current is None or current[0] != value or current[1] != at:
                into[key] = [value, at]
                changed = True
    return changed


def _split(traits: Mapping[str, list[Any]]) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    plain = {k: v for k, v in traits.items() if k not in PII_TRAITS}
    personal = {k: v for k, v in traits.items() if k in PII_TRAITS}
    return plain, personal


def apply_touches(session: Session, cipher: PiiCipher, touches: Mapping[int, Touch]) -> None:
    """Write a batch's activity and traits into its base profiles with one bulk update."""
    if not touches:
        return
    columns = PROFILES.c
    rows = session.connection().execute(select(columns.id, columns.first_seen_at, columns.last_seen_at,
                                               columns.event_count, columns.traits, columns.pii_traits_encrypted)
                                        .where(columns.id.in_(list(touches)))).all()
    updates = []
    for profile_id, first, last, count, traits, pii_blob in rows:
        touch = touches[profile_id]
        change: dict[str, Any] = {"id": profile_id, "first_seen_at": min(first, touch.first) if first else touch.first,
                                  "last_seen_at": max(last, touch.last) if last else touch.last,
                                  "event_count": count + touch.count}
        plain, personal = _split(touch.traits)
        if plain:
            merged = dict(traits or {})
            if _fold(merged, plain):
                change["traits"] = merged
        if personal:
            stored = orjson.loads(cipher.decrypt(pii_blob)) if pii_blob else {}
            if _fold(stored, personal):
                change["pii_traits_encrypted"] = cipher.encrypt(orjson.dumps(stored).decode())
        updates.append(change)
    _bulk_update(session, updates)


def _bulk_update(session: Session, updates: list[dict[str, Any]]) -> None:
    """One executemany per set of changed columns, values handed to the driver as they are stored."""
    bind_time = time_binder(session)
    encode = {"first_seen_at": bind_time, "last_seen_at": bind_time, "traits": json_text}
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for change in updates:
        columns = tuple(sorted(c for c in change if c != "id"))
        groups.setdefault(columns, []).append(
            (*(encode[c](change[c]) if c in encode else change[c] for c in columns), change["id"]))
    for columns, rows in groups.items():
        assignments = ", ".join(f"{c} = {json_param(session) if c == 'traits' else '?'}" for c in columns)
        driver_execute(session, f"UPDATE profiles SET {assignments} WHERE id = ?", rows)


def _fold(into: dict[str, list[Any]], newer: Mapping[str, list[Any]]) -> bool:
    changed = False
    for key, (value, at) in newer.items():
        changed |= merge_traits(into, {key: value}, at)
    return changed


def customer_traits(cipher: PiiCipher, profiles: Iterable[Profile], *, reveal_pii: bool) -> dict[str, Any]:
    """The customer's traits across all its base profiles, newest value per trait."""
    combined: dict[str, list[Any]] = {}
    for profile in profiles:
        _fold(combined, profile.traits or {})
        if reveal_pii and profile.pii_traits_encrypted:
            _fold(combined, orjson.loads(cipher.decrypt(profile.pii_traits_encrypted)))
    return {key: value for key, (value, _) in sorted(combined.items()) if not key.startswith("_")}
