"""Reading customers: a customer is a surviving profile plus every base profile merged into it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import CompoundSelect, Select, delete, func, select
from sqlalchemy.orm import Session

from lianjie.crypto import PiiCipher
from lianjie.errors import NotFound, ValidationFailed
from lianjie.identity.config import load_config
from lianjie.identity.identifiers import is_pii, normalise
from lianjie.identity.models import Consent, Event, Identifier, Profile, ProfileTag
from lianjie.identity.schemas import ConsentOut, EventOut, IdentifierOut, ProfileOut, ProfileSummary, TagsIn
from lianjie.identity.traits import customer_traits
from lianjie.pagination import paginate

RECENT_EVENTS = 10


def root_of(session: Session, tenant_id: int, profile_id: int) -> int:
    """The customer a profile id belongs to; another merchant's profile is simply not found."""
    row = session.execute(select(Profile.id, Profile.merged_into_id)
                          .where(Profile.tenant_id == tenant_id, Profile.id == profile_id)).first()
    if row is None:
        raise NotFound(f"no profile {profile_id}", code="profile_not_found")
    root: int = row.merged_into_id or row.id
    return root


def member_ids(tenant_id: Any, root: Any) -> CompoundSelect[int]:
    """The ids of a customer's base profiles: two index probes (the root by id, the rest by
    ``merged_into_id``), not one OR that a planner may answer by scanning the merchant's profiles."""
    return select(Profile.id).where(Profile.tenant_id == tenant_id, Profile.id == root).union_all(
        select(Profile.id).where(Profile.tenant_id == tenant_id, Profile.merged_into_id == root))


def members(session: Session, tenant_id: int, root: int) -> list[Profile]:
    """The base profiles of a customer, survivor first."""
    ids = list(session.scalars(member_ids(tenant_id, root)))
    rows = session.scalars(select(Profile).where(Profile.id.in_(ids)).order_by(Profile.id)).all()
    return list(rows)


def mask(type_: str, value: str) -> str:
    """Enough to recognise a phone or email without revealing it: +86138****8000, z***@qq.com."""
    if type_ == "phone":
        return value[:6] + "****" + value[-4:] if len(value) > 10 else "****"
    if type_ == "email" and "@" in value:
        user, _, domain = value.partition("@")
        return f"{user[:1]}***@{domain}"
    return value


def identifier_value(cipher: PiiCipher, row: Identifier) -> str:
    if row.value is not None:
        return row.value
    return cipher.decrypt(row.value_encrypted) if row.value_encrypted else ""


def identifiers_of(session: Session, cipher: PiiCipher, ids: Sequence[int], *, reveal_pii: bool) -> list[IdentifierOut]:
    rows = session.scalars(select(Identifier).where(Identifier.profile_id.in_(ids))
                           .order_by(Identifier.created_at, Identifier.id)).all()
    out = []
    for row in rows:
        value = identifier_value(cipher, row)
        out.append(IdentifierOut(type=row.type, value=value if reveal_pii or not is_pii(row.type) else
                                 mask(row.type, value), profile_id=row.profile_id, created_at=row.created_at))
    return out


def current_consent(session: Session, profile_ids: Sequence[int]) -> list[ConsentOut]:
    """The latest decision per purpose and channel across the customer's profiles."""
    rows = session.scalars(select(Consent).where(Consent.profile_id.in_(profile_ids))
                           .order_by(Consent.recorded_at, Consent.id)).all()
    latest: dict[tuple[str, str], Consent] = {}
    for row in rows:
        latest[(row.purpose, row.channel)] = row
    return [ConsentOut(purpose=c.purpose, channel=c.channel, granted=c.granted, source=c.source,
                       recorded_at=c.recorded_at) for _, c in sorted(latest.items())]


def events_query(tenant_id: int, profile_ids: Sequence[int]) -> Select[Any]:
    return (select(Event).where(Event.tenant_id == tenant_id, Event.profile_id.in_(profile_ids))
            .order_by(Event.timestamp.desc(), Event.id.desc()))


def summarise(root: int, profiles: Sequence[Profile]) -> ProfileSummary:
    """Activity of a customer across its base profiles."""
    firsts = [p.first_seen_at for p in profiles if p.first_seen_at]
    lasts = [p.last_seen_at for p in profiles if p.last_seen_at]
    return ProfileSummary(id=root, first_seen_at=min(firsts) if firsts else None,
                          last_seen_at=max(lasts) if lasts else None,
                          event_count=sum(p.event_count for p in profiles))


def get_profile(session: Session, cipher: PiiCipher, tenant_id: int, profile_id: int, *,
                reveal_pii: bool) -> ProfileOut:
    root = root_of(session, tenant_id, profile_id)
    profiles = members(session, tenant_id, root)
    ids = [p.id for p in profiles]
    survivor = profiles[0] if profiles[0].id == root else next(p for p in profiles if p.id == root)
    recent = session.scalars(events_query(tenant_id, ids).limit(RECENT_EVENTS)).all()
    activity = summarise(root, profiles)
    return ProfileOut(
        id=root, merged_ids=[i for i in ids if i != root], created_at=survivor.created_at,
        first_seen_at=activity.first_seen_at, last_seen_at=activity.last_seen_at, event_count=activity.event_count,
        identifiers=identifiers_of(session, cipher, ids, reveal_pii=reveal_pii),
        traits=customer_traits(cipher, profiles, reveal_pii=reveal_pii),
        tags=tags_of(session, ids),
        consent=current_consent(session, ids),
        recent_events=[EventOut.model_validate(e) for e in recent],
        erased=survivor.erased_at is not None,
        reappeared_after_erasure=any("_reappeared_after_erasure" in (p.traits or {}) for p in profiles),
    )


def profile_events(session: Session, tenant_id: int, profile_id: int, *, limit: int, offset: int,
                   event: str | None = None) -> tuple[Sequence[Event], int]:
    root = root_of(session, tenant_id, profile_id)
    ids = [p.id for p in members(session, tenant_id, root)]
    query = events_query(tenant_id, ids)
    if event is not None:
        query = query.where(Event.event == event)
    return paginate(session, query, limit, offset)


def find_by_identifiers(session: Session, cipher: PiiCipher, tenant_id: int,
                        wanted: Mapping[str, str]) -> set[int]:
    """Customers holding every given identifier (``{"phone": "138…"}``), as root ids."""
    config = load_config(session, tenant_id)
    roots: set[int] | None = None
    for type_, raw in wanted.items():
        if type_ not in config.types:
            raise ValidationFailed(f"unknown identifier type {type_!r}; known: {', '.join(config.types)}",
                                   field=type_)
        value = normalise(type_, raw)
        if value is None:
            raise ValidationFailed(f"{raw!r} is not a usable {type_}", field=type_)
        found = session.scalars(select(func.coalesce(Profile.merged_into_id, Profile.id))
                                .join(Identifier, Identifier.profile_id == Profile.id)
                                .where(Identifier.tenant_id == tenant_id, Identifier.type == type_,
                                       Identifier.value_hash == cipher.lookup_hash(type_, value))).all()
        roots = set(found) if roots is None else roots & set(found)
    return roots or set()


def search(session: Session, tenant_id: int, *, tag: str | None = None, trait: tuple[str, str] | None = None,
           seen_after: dt.datetime | None = None, seen_before: dt.datetime | None = None,
           limit: int = 50, offset: int = 0) -> tuple[Sequence[ProfileSummary], int]:
    """Customers by tag, a non-personal trait value, or activity window (newest activity first)."""
    root_expr = func.coalesce(Profile.merged_into_id, Profile.id)
    matching = select(root_expr).where(Profile.tenant_id == tenant_id)
    if tag is not None:
        matching = matching.where(Profile.id.in_(select(ProfileTag.profile_id).where(
            ProfileTag.tenant_id == tenant_id, ProfileTag.tag == tag)))
    if trait is not None:
        key, value = trait
        matching = matching.where(Profile.traits[(key, 0)].as_string() == value)
    # Activity is summed over every base profile of a customer, as get_profile reports it.
    last_seen = func.max(Profile.last_seen_at)
    query = (select(root_expr, func.min(Profile.first_seen_at), last_seen, func.sum(Profile.event_count))
             .where(Profile.tenant_id == tenant_id, root_expr.in_(matching)).group_by(root_expr))
    if seen_after is not None:
        query = query.having(last_seen >= seen_after)
    if seen_before is not None:
        query = query.having(last_seen < seen_before)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(query.order_by(last_seen.desc().nulls_last(), root_expr).limit(limit).offset(offset)).all()
    return [ProfileSummary(id=r[0], first_seen_at=r[1], last_seen_at=r[2], event_count=r[3] or 0) for r in rows], total


def tags_of(session: Session, profile_ids: Sequence[int]) -> list[str]:
    return sorted(set(session.scalars(select(ProfileTag.tag).where(ProfileTag.profile_id.in_(profile_ids)))))


def update_tags(session: Session, tenant_id: int, profile_id: int, change: TagsIn) -> list[str]:
    """Manual tags are added to the survivor; removing one removes it from every merged profile too."""
    root = root_of(session, tenant_id, profile_id)
    ids = [p.id for p in members(session, tenant_id, root)]
    for tag in change.add + change.remove:
        if not tag.strip() or len(tag) > 64:
            raise ValidationFailed(f"tag {tag!r} must be 1-64 characters", field="tags")
    if change.remove:
        session.execute(delete(ProfileTag).where(ProfileTag.profile_id.in_(ids), ProfileTag.tag.in_(change.remove)))
    present = set(tags_of(session, [root]))
    for tag in sorted(set(change.add) - present - set(change.remove)):
        session.add(ProfileTag(tenant_id=tenant_id, profile_id=root, tag=tag))
    session.flush()
    return tags_of(session, ids)
