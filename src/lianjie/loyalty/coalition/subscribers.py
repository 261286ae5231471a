"""The coalition's reactions to OneID: cards follow profile merges and unmerges (see cards.py)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from lianjie.domain_events import subscribe
from lianjie.identity.events import MergeUndone, ProfilesMerged
from lianjie.loyalty.coalition import cards


def on_profiles_merged(session: Session, event: ProfilesMerged) -> None:
    cards.after_profiles_merged(session, event.tenant_id, event.merge_id, event.survivor_id, event.moved_ids)


def on_merge_undone(session: Session, event: MergeUndone) -> None:
    cards.after_merge_undone(session, event.tenant_id, event.merge_id)


def install() -> None:
    subscribe(ProfilesMerged, on_profiles_merged)
    subscribe(MergeUndone, on_merge_undone)
