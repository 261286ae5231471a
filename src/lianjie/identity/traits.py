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
from sqlalchemy.orm import Session

from lianjie.crypto import PiiCipher
from lianjie.db import driver_execute, is_sqlite, json_text, json_value, rows_by_key
from lianjie.identity.models import Profile
from lianjie.identity.pii import PII_TRAITS


def stamp(moment: dt.datetime) -> str:
    """A fixed-width UTC time text, so stamps compare correctly as strings (``2025-11-01T07:08:27.000000Z``)."""
    if moment.tzinfo is not dt.UTC:
        moment = moment.astimezone(dt.UTC)
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"  # without its "+00:00"


@dataclass(slots=True)
class Touch:
    """What one batch did to one base profile.

    ``first`` and ``last`` are event times as the database stores them (SQLite's fixed-width text,
    which compares like the times; PostgreSQL's datetimes), taken from the events' own rows, so the
    writer holding the lock formats no time.
    """

    first: Any
    last: Any
    count: int = 0
    traits: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, stored_time: Any, traits: Mapping[str, Any] | None, at: str | None) -> None:
        """One more event at ``stored_time``; ``at`` is its :func:`stamp`, needed when it has traits."""
        if stored_time < self.first:
            self.first = stored_time
        elif stored_time > self.last:
            self.last = stored_time
        self.count += 1
        if traits:
            if at is None:
                raise ValueError("an event with traits needs its stamp")
            merge_traits(self.traits, traits, at)


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
    """Write a batch's activity and traits into its base profiles with one read and one bulk update.

    Both go straight to the driver, with times in the driver's own form (SQLite's fixed-width text,
    which compares like the times it stands for; PostgreSQL's aware datetimes): through SQLAlchemy's
    type processors this read and write cost more than SQLite's own work on them.
    """
    if not touches:
        return
    rows = rows_by_key(session, "SELECT id, first_seen_at, last_seen_at, event_count, traits, pii_traits_encrypted"
                                " FROM profiles WHERE id {key}", (), list(touches), key_type="bigint")
    updates = []
    for profile_id, first, last, count, traits, pii_blob in rows:
        touch = touches[profile_id]
        touch_first, touch_last = touch.first, touch.last
        change: dict[str, Any] = {"id": profile_id, "first_seen_at": min(first, touch_first) if first else touch_first,
                                  "last_seen_at": max(last, touch_last) if last else touch_last,
                                  "event_count": count + touch.count}
        plain, personal = _split(touch.traits)
        if plain:
            merged = dict(json_value(traits) or {})
            if _fold(merged, plain):
                change["traits"] = json_text(merged)
        if personal:
            stored = orjson.loads(cipher.decrypt(pii_blob)) if pii_blob else {}
            if _fold(stored, personal):
                change["pii_traits_encrypted"] = cipher.encrypt(orjson.dumps(stored).decode())
        updates.append(change)
    _bulk_update(session, updates)


def _bulk_update(session: Session, updates: list[dict[str, Any]]) -> None:
    """One statement per set of changed columns; values are already in the driver's form.

    SQLite runs an executemany of the one-row UPDATE. PostgreSQL gets one UPDATE joined to the
    columns' arrays: executing the one-row UPDATE once per profile cost its server several times more.
    """
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for change in updates:
        columns = tuple(sorted(c for c in change if c != "id"))
        groups.setdefault(columns, []).append((*(change[c] for c in columns), change["id"]))
    for columns, rows in groups.items():
        if is_sqlite(session):
            assignments = ", ".join(f"{c} = ?" for c in columns)
            driver_execute(session, f"UPDATE profiles SET {assignments} WHERE id = ?", rows)
            continue
        dialect = session.get_bind().dialect
        types = [Profile.__table__.c[c].type.compile(dialect=dialect) for c in (*columns, "id")]
        arrays = tuple(list(values) for values in zip(*rows, strict=True))
        driver_execute(session, f"UPDATE profiles AS p SET {', '.join(f'{c} = v.{c}' for c in columns)}"
                                f" FROM unnest({', '.join(f'?::{t}[]' for t in types)})"
                                f" AS v({', '.join(columns)}, id) WHERE p.id = v.id", arrays)


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
