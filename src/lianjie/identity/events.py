"""Domain events the identity graph publishes when customers are joined or split.

Rows that belong to a customer (events, orders, points lots, tier history) stay attributed to the
*base profile* they were recorded with; a customer is a root profile and every profile merged into it.
So a merge or an unmerge moves no rows, and splitting back is exact. What does change is anything
computed over the whole customer (a tier, a balance cached somewhere), which subscribers recompute.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProfilesMerged:
    """Customer ``merged_id`` (a root until now) became part of customer ``survivor_id``."""

    tenant_id: int
    merge_id: int
    survivor_id: int
    merged_id: int
    moved_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MergeUndone:
    """Merge ``merge_id`` was undone: ``restored_id`` is a customer of its own again, apart from ``survivor_id``."""

    tenant_id: int
    merge_id: int
    survivor_id: int
    restored_id: int


@dataclass(frozen=True, slots=True)
class EventsTracked:
    """``track`` messages were stored for the first time (a replayed messageId is not in here).

    One per stored batch, so a subscriber pays once per transaction, not per message: ingestion
    publishes it while it holds the merchant's write lock. ``items`` are (base profile id, event
    name, messageId) in arrival order.
    """

    tenant_id: int
    items: tuple[tuple[int, str, str], ...]
