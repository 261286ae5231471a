"""The coalition's section of the PIPL export (identity/export.py): the person's coalition cards as
this merchant holds them.

A card spans merchants, but an export answers for the merchant that asks, like every other read:
the card's number, the cards merged with it, this merchant's links (and the consent each was made
with), the balance (which a linked merchant's till shows anyway), and the lots, entries, operations
and card merges that happened *at this merchant*. What the person did at another partner is that
partner's to export.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from lianjie.crypto import PiiCipher
from lianjie.db import utcnow
from lianjie.identity.export import register_section, row, rows
from lianjie.loyalty.coalition.models import (
    Coalition,
    CoalitionCard,
    CoalitionCardLink,
    CoalitionCardMerge,
    CoalitionEntry,
    CoalitionLot,
    CoalitionOperation,
)


def cards(session: Session, cipher: PiiCipher, tenant_id: int, profile_ids: Sequence[int]) -> list[dict[str, Any]]:
    links = session.scalars(select(CoalitionCardLink).where(CoalitionCardLink.tenant_id == tenant_id,
                                                            CoalitionCardLink.profile_id.in_(profile_ids))
                            .order_by(CoalitionCardLink.id)).all()
    linked = session.scalars(select(CoalitionCard).where(CoalitionCard.id.in_({link.card_id for link in links}))).all()
    roots = sorted({c.merged_into_id or c.id for c in linked})
    return [_card(session, tenant_id, root, links) for root in roots]


def _card(session: Session, tenant_id: int, root: int, links: Sequence[CoalitionCardLink]) -> dict[str, Any]:
    group = session.scalars(select(CoalitionCard).where(or_(CoalitionCard.id == root,
                                                            CoalitionCard.merged_into_id == root))
                            .order_by(CoalitionCard.id)).all()
    ids = [c.id for c in group]
    survivor = next(c for c in group if c.id == root)
    coalition = session.get_one(Coalition, survivor.coalition_id)
    now = utcnow()
    lots = session.scalars(select(CoalitionLot).where(CoalitionLot.card_id.in_(ids))
                           .order_by(CoalitionLot.id)).all()
    here = [lot for lot in lots if lot.tenant_id == tenant_id]
    balance = sum(lot.remaining for lot in lots if lot.expires_at is None or lot.expires_at > now)

    def at_merchant(model: Any) -> list[Any]:
        return list(session.scalars(select(model).where(model.tenant_id == tenant_id, model.card_id.in_(ids))
                                    .order_by(model.id)))

    merges = session.scalars(select(CoalitionCardMerge).where(
        CoalitionCardMerge.tenant_id == tenant_id,
        CoalitionCardMerge.survivor_card_id.in_(ids) | CoalitionCardMerge.merged_card_id.in_(ids))
        .order_by(CoalitionCardMerge.id)).all()
    return {
        "coalition": coalition.code, "card_no": survivor.card_no, "balance": balance,
        "cards": rows(group), "links": rows([link for link in links if link.card_id in ids], exclude={"tenant_id"}),
        "lots": rows(here, exclude={"tenant_id"}),
        "entries": rows(at_merchant(CoalitionEntry), exclude={"tenant_id"}),
        "operations": rows(at_merchant(CoalitionOperation), exclude={"tenant_id"}),
        "card_merges": [row(m, exclude={"tenant_id"}) for m in merges],
    }


def install() -> None:
    register_section("coalition_cards", ["coalition_cards", "coalition_card_links", "coalition_card_merges",
                                         "coalition_lots", "coalition_entries", "coalition_operations"], cards)
