"""Loyalty's sections of the PIPL export (identity/export.py): the points ledger of the customer's
accounts (accounts, operations, lots and entries, in points) and the tier history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.crypto import PiiCipher
from lianjie.identity.export import register_section, rows
from lianjie.loyalty.models import PointsAccount, PointsEntry, PointsLot, PointsOperation, TierAssignment


def points(session: Session, cipher: PiiCipher, tenant_id: int, profile_ids: Sequence[int]) -> dict[str, Any]:
    """Every account of the customer's profiles, and every operation, lot and entry that touched them.

    An operation belongs here when it is attributed to one of the profiles or wrote an entry to one of
    their accounts (a spend from a merged customer's accounts is attributed to one profile only).
    """
    accounts = session.scalars(select(PointsAccount).where(PointsAccount.tenant_id == tenant_id,
                                                           PointsAccount.profile_id.in_(profile_ids))
                               .order_by(PointsAccount.id)).all()
    account_ids = [a.id for a in accounts]
    lots = session.scalars(select(PointsLot).where(PointsLot.tenant_id == tenant_id,
                                                   PointsLot.account_id.in_(account_ids)).order_by(PointsLot.id)).all()
    entries = session.scalars(select(PointsEntry).where(PointsEntry.tenant_id == tenant_id,
                                                        PointsEntry.account_id.in_(account_ids))
                              .order_by(PointsEntry.id)).all()
    written = {e.operation_id for e in entries}
    operations = session.scalars(select(PointsOperation).where(
        PointsOperation.tenant_id == tenant_id,
        PointsOperation.profile_id.in_(profile_ids) | PointsOperation.id.in_(written))
        .order_by(PointsOperation.id)).all()
    return {"accounts": rows(accounts, exclude={"tenant_id"}), "operations": rows(operations, exclude={"tenant_id"}),
            "lots": rows(lots, exclude={"tenant_id"}), "entries": rows(entries, exclude={"tenant_id"})}


def tiers(session: Session, cipher: PiiCipher, tenant_id: int, profile_ids: Sequence[int]) -> list[dict[str, Any]]:
    found = session.scalars(select(TierAssignment).where(TierAssignment.tenant_id == tenant_id,
                                                         TierAssignment.profile_id.in_(profile_ids))
                            .order_by(TierAssignment.id))
    return rows(found, exclude={"tenant_id"})


def install() -> None:
    register_section("points", ["points_accounts", "points_operations", "points_lots", "points_entries"], points)
    register_section("tiers", ["tier_assignments"], tiers)
