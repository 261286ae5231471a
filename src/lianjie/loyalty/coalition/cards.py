"""Coalition cards: one per person, linked to their profiles at the member merchants they consented to.

Consent: linking a merchant's profile to a coalition card shares that person's points activity with
the partners' settlement, so it needs the customer's consent for the purpose ``coalition`` (identity's
consent model, channel ``all``). A link request either carries ``consent_source`` (where the customer
just agreed: it is recorded as a consent decision, with its history, in the same transaction) or the
customer must already have granted it; otherwise 422 ``consent_required``. Withdrawing it (the
consent API, ``granted: false``) stops earning, redeeming and reading the card at that merchant with
409 ``consent_withdrawn``; the link stays as history, and linking again with consent resumes it.

Joining the same card at a second merchant is by card number: the customer shows the card (or its
QR code) at merchant B's till, and B links its own profile to that number. lianjie never matches
people across merchants by phone or any other identifier: each merchant's OneID stays its own.

OneID merges: a link names a base profile, and a customer's card is the card linked to any of its
profiles. When a merchant's OneID merges two customers that hold *different* cards, the cards merge
like profiles do: the absorbed card (and any card already merged into it) points at the survivor's
card, the lowest-numbered one when a side holds several; lots stay on the card that earned them,
and a card's balance is over the card and every card merged into it. Undoing the OneID merge
resets those pointers, so each card has its own lots back; points redeemed while merged stay spent
from the lots they came from (soonest-expiring first, whichever card held them).
"""

from __future__ import annotations

import datetime as dt
import secrets
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from lianjie.db import driver_execute, forget_cached, transaction_cache, utcnow
from lianjie.errors import Conflict, NotFound, ValidationFailed
from lianjie.identity import privacy
from lianjie.identity.schemas import Channel, ConsentIn, Purpose
from lianjie.identity.service import current_consent, member_ids, root_of
from lianjie.loyalty.coalition.models import (
    CoalitionCard,
    CoalitionCardLink,
    CoalitionCardMerge,
    CoalitionLot,
)
from lianjie.loyalty.coalition.schemas import CardOut, LinkIn
from lianjie.loyalty.coalition.setup import Access, active_member


def _profile_ids(session: Session, tenant_id: int, profile_id: int) -> list[int]:
    return list(session.scalars(member_ids(tenant_id, root_of(session, tenant_id, profile_id))))


def _has_consent(session: Session, profile_ids: list[int]) -> bool:
    return any(c.purpose == Purpose.COALITION.value and c.channel == Channel.ALL.value and c.granted
               for c in current_consent(session, profile_ids))


def root_card(session: Session, card_id: int) -> int:
    merged_into = session.scalar(select(CoalitionCard.merged_into_id).where(CoalitionCard.id == card_id))
    return merged_into or card_id


def group(session: Session, root_id: int, *, lock: bool = False) -> list[int]:
    """A card and every card merged into it, in id order (locked until the transaction ends)."""
    query = (select(CoalitionCard.id).where(or_(CoalitionCard.id == root_id, CoalitionCard.merged_into_id == root_id))
             .order_by(CoalitionCard.id))
    return list(session.scalars(query.with_for_update() if lock else query))


def lock_groups(session: Session, card_ids: set[int]) -> None:
    """Lock the groups of many cards at once (the expiry job), in id order like :func:`group`."""
    rows = session.execute(select(CoalitionCard.id, CoalitionCard.merged_into_id)
                           .where(CoalitionCard.id.in_(card_ids))).all()
    roots = {r.merged_into_id or r.id for r in rows}
    session.execute(select(CoalitionCard.id).where(or_(CoalitionCard.id.in_(roots),
                                                       CoalitionCard.merged_into_id.in_(roots)))
                    .order_by(CoalitionCard.id).with_for_update()).all()


def _cards_of_profiles(session: Session, coalition_id: int, tenant_id: int, profile_ids: list[int]) -> set[int]:
    card_ids = session.scalars(select(CoalitionCardLink.card_id).where(
        CoalitionCardLink.coalition_id == coalition_id, CoalitionCardLink.tenant_id == tenant_id,
        CoalitionCardLink.profile_id.in_(profile_ids))).all()
    return {root_card(session, c) for c in card_ids}


def link(session: Session, acc: Access, data: LinkIn, now: dt.datetime | None = None) -> tuple[str, int, bool]:
    """Link the customer's profile at the caller's merchant to a card (a new one without ``card_no``).

    Returns (card number, linked profile, created). Linking the same customer to the same card again
    is a no-op (200); to another card, 409: one person, one card per coalition at a merchant.
    """
    now = now or utcnow()
    active_member(acc, now, issuing=None)
    tenant_id, coalition_id = acc.tenant_id, acc.coalition.id
    root = root_of(session, tenant_id, data.profile_id)
    ids = list(session.scalars(member_ids(tenant_id, root)))
    wanted: int | None = None
    if data.card_no is not None:
        wanted = find(session, coalition_id, data.card_no)
    held = _cards_of_profiles(session, coalition_id, tenant_id, ids)
    if held and wanted is not None and wanted not in held:
        raise Conflict("this customer is already linked to another coalition card at this merchant",
                       code="already_linked", field="card_no")
    if data.consent_source is not None:  # a repeated decision from the same source adds nothing
        privacy.record_consent(session, tenant_id, root, ConsentIn(
            purpose=Purpose.COALITION, channel=Channel.ALL, granted=True, source=data.consent_source))
    elif not _has_consent(session, ids):
        raise ValidationFailed("the customer has not consented to purpose 'coalition' at this merchant; send "
                               "consent_source saying where they agreed", code="consent_required",
                               field="consent_source")
    if held:
        return _card_no(session, min(held)), root, False
    if wanted is None:
        card = CoalitionCard(coalition_id=coalition_id, card_no=f"{secrets.randbelow(10**16):016d}", created_at=now)
        session.add(card)
        session.flush()
        wanted = card.id
    session.add(CoalitionCardLink(coalition_id=coalition_id, tenant_id=tenant_id, card_id=wanted, profile_id=root,
                                  consent_source=data.consent_source or "consent on record", linked_at=now))
    session.flush()
    forget_cached(session, _HAS_CARDS)
    return _card_no(session, wanted), root, True


def _card_no(session: Session, card_id: int) -> str:
    return session.scalars(select(CoalitionCard.card_no).where(CoalitionCard.id == card_id)).one()


def find(session: Session, coalition_id: int, card_no: str) -> int:
    """The surviving card behind a card number (a merged card's number still works)."""
    row = session.execute(select(CoalitionCard.id, CoalitionCard.merged_into_id).where(
        CoalitionCard.coalition_id == coalition_id, CoalitionCard.card_no == card_no)).first()
    if row is None:
        raise NotFound(f"no card {card_no!r} in this coalition", code="card_not_found", field="card_no")
    return int(row.merged_into_id or row.id)


def linked_card(session: Session, acc: Access, card_no: str) -> int:
    """The card behind ``card_no`` if the caller's merchant has a link to it (or to a card merged with it);
    otherwise 404, so a merchant cannot look up cards its customers never consented to link there."""
    root = find(session, acc.coalition.id, card_no)
    linked = session.scalars(select(CoalitionCardLink.profile_id).where(
        CoalitionCardLink.tenant_id == acc.tenant_id, CoalitionCardLink.card_id.in_(group(session, root)))).all()
    if not linked:
        raise NotFound(f"card {card_no!r} is not linked at this merchant; link it first", code="card_not_linked",
                       field="card_no")
    customers = {p for profile_id in linked for p in _profile_ids(session, acc.tenant_id, profile_id)}
    if not _has_consent(session, sorted(customers)):
        raise Conflict(f"the customer withdrew consent to use coalition card {card_no!r} at this merchant; "
                       "link again with consent_source once they agree", code="consent_withdrawn",
                       field="card_no")
    return root


def card_of_profile(session: Session, acc: Access, profile_id: int) -> str:
    cards = _cards_of_profiles(session, acc.coalition.id, acc.tenant_id,
                               _profile_ids(session, acc.tenant_id, profile_id))
    if not cards:
        raise NotFound(f"profile {profile_id} has no coalition card here", code="card_not_linked")
    return _card_no(session, min(cards))


def live_lots(session: Session, card_ids: list[int], now: dt.datetime) -> list[CoalitionLot]:
    """Spendable lots, soonest-expiring first (never-expiring last)."""
    return list(session.scalars(select(CoalitionLot).where(
        CoalitionLot.card_id.in_(card_ids), CoalitionLot.remaining > 0,
        or_(CoalitionLot.expires_at.is_(None), CoalitionLot.expires_at > now))
        .order_by(CoalitionLot.expires_at.is_(None), CoalitionLot.expires_at, CoalitionLot.id)))


def describe(session: Session, acc: Access, card_no: str, now: dt.datetime | None = None) -> CardOut:
    now = now or utcnow()
    root = linked_card(session, acc, card_no)
    ids = group(session, root)
    lots = live_lots(session, ids, now)
    zone = ZoneInfo(acc.coalition.timezone)
    expiring: dict[dt.date, int] = {}
    for lot in lots:
        if lot.expires_at is not None:
            day = (lot.expires_at - dt.timedelta(microseconds=1)).astimezone(zone).date()
            expiring[day] = expiring.get(day, 0) + lot.remaining
    links = session.execute(select(CoalitionCardLink.tenant_id, CoalitionCardLink.profile_id).where(
        CoalitionCardLink.card_id.in_(ids))).all()
    return CardOut(card_no=_card_no(session, root), balance=sum(lot.remaining for lot in lots),
                   expiring=sorted(expiring.items())[:5],
                   linked_here=sorted(p for t, p in links if t == acc.tenant_id),
                   merchants_linked=len({t for t, _ in links}))


# ---- following OneID ---------------------------------------------------------------------------------


_HAS_CARDS = "lianjie.coalition.has_cards"


def _has_cards(session: Session, tenant_id: int) -> bool:
    """Whether any customer of the merchant holds a coalition card, asked once per transaction (a
    batch of tracking calls makes dozens of merges; on PostgreSQL each question was a round trip)."""
    cache = transaction_cache(session, _HAS_CARDS)
    if tenant_id not in cache:
        cache[tenant_id] = driver_execute(session, "SELECT 1 FROM coalition_card_links WHERE tenant_id = ? LIMIT 1",
                                          (tenant_id,)).first() is not None
    held: bool = cache[tenant_id]
    return held


def after_profiles_merged(session: Session, tenant_id: int, merge_id: int, survivor_id: int,
                          moved_ids: tuple[int, ...]) -> None:
    """Merge the absorbed customer's card into the survivor's, in every coalition where both hold one.

    Runs for every OneID merge that ingestion makes, so a merchant with no coalition cards at all
    (most merchants) is answered by one look-up in the (tenant_id, profile_id) index.
    """
    if not _has_cards(session, tenant_id):
        return
    everyone = list(session.scalars(member_ids(tenant_id, survivor_id)))
    links = session.execute(select(CoalitionCardLink.coalition_id, CoalitionCardLink.card_id,
                                   CoalitionCardLink.profile_id).where(
        CoalitionCardLink.tenant_id == tenant_id, CoalitionCardLink.profile_id.in_(everyone))).all()
    for coalition_id in sorted({link.coalition_id for link in links}):
        sides = [{root_card(session, r.card_id) for r in links
                  if r.coalition_id == coalition_id and (r.profile_id in moved_ids) == absorbed}
                 for absorbed in (False, True)]
        if not sides[0] or not sides[1] or sides[0] & sides[1]:
            continue
        survivor, absorbed = min(sides[0]), min(sides[1])
        lock_groups(session, {survivor, absorbed})  # both in one id-ordered statement: no lock cycle
        moved = group(session, absorbed)
        session.execute(update(CoalitionCard).where(CoalitionCard.id.in_(moved)).values(merged_into_id=survivor))
        session.add(CoalitionCardMerge(coalition_id=coalition_id, tenant_id=tenant_id, profile_merge_id=merge_id,
                                       survivor_card_id=survivor, merged_card_id=absorbed, moved_card_ids=moved))
    session.flush()


def after_merge_undone(session: Session, tenant_id: int, merge_id: int) -> None:
    """Split the cards a OneID merge joined: the absorbed card and those that had joined it stand apart again."""
    merges = session.scalars(select(CoalitionCardMerge).where(CoalitionCardMerge.tenant_id == tenant_id,
                                                              CoalitionCardMerge.profile_merge_id == merge_id,
                                                              CoalitionCardMerge.undone_at.is_(None))).all()
    for merge in merges:
        others = [c for c in merge.moved_card_ids if c != merge.merged_card_id]
        session.execute(update(CoalitionCard).where(CoalitionCard.id == merge.merged_card_id)
                        .values(merged_into_id=None))
        if others:
            session.execute(update(CoalitionCard).where(CoalitionCard.id.in_(others))
                            .values(merged_into_id=merge.merged_card_id))
        merge.undone_at = utcnow()
    session.flush()
