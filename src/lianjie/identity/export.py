"""The PIPL export (art. 45): everything held about a person, gathered section by section.

Identity sits low in the import order, but a person's data lives in every domain above it (orders,
points, coupons, memberships, coalition cards, traits). So identity owns a registry and each domain
contributes its own section from its own module (``commerce/export.py``, ``loyalty/export.py`` …),
registered by :func:`lianjie.wiring.install`; identity never imports upwards.

A section is a name, the tables it reports (``tests/identity/test_export.py`` fails when a table that
points at a person is reported by no section) and a function ``fn(session, cipher, tenant_id,
profile_ids)`` answering JSON-ready values for the customer's base profiles (the survivor and every
profile merged into it). :func:`rows` turns ORM rows into such values: times ISO 8601 in UTC, dates
ISO, money as the integer fen it is stored in, encrypted columns left out (a section decrypts what
it holds and puts the plain value in).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import LargeBinary, select
from sqlalchemy.orm import Session

from lianjie.crypto import PiiCipher
from lianjie.db import Base, utcnow
from lianjie.identity import pii
from lianjie.identity.models import Consent, Event, Identifier, IdentityConflict, Merge, Profile, ProfileTag
from lianjie.identity.service import get_profile, identifier_value, members, root_of

SectionFn = Callable[[Session, PiiCipher, int, Sequence[int]], Any]


@dataclass(frozen=True)
class Section:
    name: str
    tables: frozenset[str]
    fn: SectionFn


_SECTIONS: dict[str, Section] = {}


def register_section(name: str, tables: Iterable[str], fn: SectionFn) -> None:
    """Add (or replace: installing twice is harmless) the section ``name`` covering ``tables``."""
    _SECTIONS[name] = Section(name, frozenset(tables), fn)


def sections() -> list[Section]:
    """The registered sections, in the order they appear in an export."""
    return list(_SECTIONS.values())


def json_value(value: Any) -> Any:
    """A stored value as JSON: aware times in UTC, dates ISO, decimals as text; the rest as is."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


def row(obj: Base, *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """One ORM row as JSON, every column but the encrypted (binary) ones and ``exclude``."""
    left_out = set(exclude)
    return {c.key: json_value(getattr(obj, c.key)) for c in obj.__table__.columns
            if c.key not in left_out and not isinstance(c.type, LargeBinary)}


def rows(objs: Iterable[Base], *, exclude: Iterable[str] = ()) -> list[dict[str, Any]]:
    return [row(o, exclude=exclude) for o in objs]


def export(session: Session, cipher: PiiCipher, tenant_id: int, profile_id: int) -> dict[str, Any]:
    """Everything held about the customer ``profile_id`` belongs to, one key per section."""
    root = root_of(session, tenant_id, profile_id)
    ids = [p.id for p in members(session, tenant_id, root)]
    out: dict[str, Any] = {"exported_at": json_value(utcnow()), "customer_id": root, "profile_ids": ids}
    for section in sections():
        out[section.name] = section.fn(session, cipher, tenant_id, ids)
    return out


# ---- identity's own sections ------------------------------------------------------------------------


def _profile(session: Session, cipher: PiiCipher, tenant_id: int, ids: Sequence[int]) -> Any:
    """The customer as the profile page shows it, personal traits and identifiers in the clear."""
    profile = get_profile(session, cipher, tenant_id, ids[0], reveal_pii=True)
    return profile.model_dump(mode="json", exclude={"recent_events"})


def _base_profiles(session: Session, cipher: PiiCipher, tenant_id: int, ids: Sequence[int]) -> Any:
    """Each base profile with its own traits, the personal ones decrypted."""
    found = session.scalars(select(Profile).where(Profile.tenant_id == tenant_id, Profile.id.in_(ids))
                            .order_by(Profile.id))
    return [row(p) | {"personal_traits": pii.unseal(cipher, p.pii_traits_encrypted)} for p in found]


def _identifiers(session: Session, cipher: PiiCipher, tenant_id: int, ids: Sequence[int]) -> Any:
    found = session.scalars(select(Identifier).where(Identifier.tenant_id == tenant_id,
                                                     Identifier.profile_id.in_(ids))
                            .order_by(Identifier.created_at, Identifier.id))
    return [row(i, exclude={"value", "value_hash"}) | {"value": identifier_value(cipher, i)} for i in found]


def _events(session: Session, cipher: PiiCipher, tenant_id: int, ids: Sequence[int]) -> Any:
    """Each message as it was sent, its personal fields put back."""
    found = session.scalars(select(Event).where(Event.tenant_id == tenant_id, Event.profile_id.in_(ids))
                            .order_by(Event.timestamp, Event.id))
    return [pii.join(e.payload, pii.unseal(cipher, e.pii_encrypted)) for e in found]


def _consent(session: Session, cipher: PiiCipher, tenant_id: int, ids: Sequence[int]) -> Any:
    found = session.scalars(select(Consent).where(Consent.tenant_id == tenant_id, Consent.profile_id.in_(ids))
                            .order_by(Consent.recorded_at, Consent.id))
    return rows(found, exclude={"tenant_id"})


def _tags(session: Session, cipher: PiiCipher, tenant_id: int, ids: Sequence[int]) -> Any:
    found = session.scalars(select(ProfileTag).where(ProfileTag.tenant_id == tenant_id,
                                                     ProfileTag.profile_id.in_(ids)).order_by(ProfileTag.id))
    return rows(found, exclude={"tenant_id"})


def _merges(session: Session, cipher: PiiCipher, tenant_id: int, ids: Sequence[int]) -> Any:
    found = session.scalars(select(Merge).where(Merge.tenant_id == tenant_id,
                                                Merge.survivor_id.in_(ids) | Merge.merged_id.in_(ids))
                            .order_by(Merge.id))
    return rows(found, exclude={"tenant_id"})


def _conflicts(session: Session, cipher: PiiCipher, tenant_id: int, ids: Sequence[int]) -> Any:
    """Links not made because of a per-type limit that named one of the profiles.

    ``profile_ids`` is a JSON list, which SQLite and PostgreSQL search differently; a merchant's open
    and reviewed conflicts are a review queue, so they are read and matched here.
    """
    wanted = set(ids)
    found = session.scalars(select(IdentityConflict).where(IdentityConflict.tenant_id == tenant_id)
                            .order_by(IdentityConflict.id).execution_options(yield_per=1000))
    return [row(c, exclude={"tenant_id"}) for c in found if wanted.intersection(c.profile_ids or ())]


register_section("profile", ["profiles", "identifiers", "profile_tags", "consents"], _profile)
register_section("profiles", ["profiles"], _base_profiles)
register_section("identifiers", ["identifiers"], _identifiers)
register_section("events", ["events"], _events)
register_section("consent_history", ["consents"], _consent)
register_section("tags", ["profile_tags"], _tags)
register_section("merges", ["profile_merges"], _merges)
register_section("identity_conflicts", ["identity_conflicts"], _conflicts)
