"""Loyalty test helpers: customers made through OneID, orders published as commerce does, and the
ledger's invariants checked straight from the tables."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lianjie.commerce.events import LineFacts, OrderCompleted, OrderRefunded
from lianjie.domain_events import publish
from lianjie.identity.models import Profile
from lianjie.loyalty import programme
from lianjie.loyalty.models import PointsAccount, PointsEntry, PointsLot, PointsOperation
from lianjie.tenants import keys
from lianjie.tenants.models import ApiKeyKind, Merchant
from lianjie.tenants.schemas import ApiKeyCreate
from tests.factories import bearer
from tests.identity.helpers import customers, msg, send

_ids = itertools.count(1)


def person(db: Session, tenant_id: int, user_id: str) -> int:
    """A customer known by ``user_id`` (created through the ingestion pipeline)."""
    send(db, tenant_id, msg("identify", userId=user_id))
    return customers(db, tenant_id, user_id=user_id).pop()


def admin(db: Session, merchant: Merchant) -> tuple[dict[str, str], str]:
    """A full admin key's headers and the actor the audit log names it by (``key:<id>``)."""
    key, secret = keys.create_api_key(db, merchant.id, ApiKeyCreate(kind=ApiKeyKind.ADMIN, name="admin",
                                                                    scopes=[keys.ALL]))
    return bearer(secret), f"key:{key.id}"


def audit_log(client: TestClient, headers: dict[str, str], action: str) -> list[dict[str, Any]]:
    """The merchant's audit entries whose action starts with ``action``, newest first."""
    response = client.get("/api/v1/audit", params={"action": action}, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def set_programme(db: Session, tenant_id: int, **rules: Any) -> programme.ProgrammeConfig:
    return programme.save(db, tenant_id, rules)


def order(db: Session, tenant_id: int, profile_id: int | None, *lines: tuple[str, str | None, int],
          order_no: str | None = None, at: dt.datetime | None = None) -> str:
    """Publish an OrderCompleted the way commerce does; lines are (sku, category, paid fen)."""
    order_no = order_no or f"O-{next(_ids)}"
    facts = tuple(LineFacts(i + 1, sku, cat, 1, fen) for i, (sku, cat, fen) in enumerate(lines))
    publish(db, OrderCompleted(tenant_id, next(_ids), order_no, profile_id, None, "offline",
                               sum(f.paid_fen for f in facts), at or dt.datetime.now(dt.UTC), facts))
    return order_no


def refund(db: Session, tenant_id: int, order_no: str, refunded_fen: int, order_paid_fen: int,
           refund_no: str | None = None, profile_id: int | None = None) -> str:
    refund_no = refund_no or f"R-{next(_ids)}"
    publish(db, OrderRefunded(tenant_id, next(_ids), order_no, next(_ids), refund_no, profile_id, refunded_fen,
                              order_paid_fen, dt.datetime.now(dt.UTC), ()))
    return refund_no


def check_invariants(db: Session, tenant_id: int, *, allow_debt: bool = True) -> None:
    """Every balance equals the sum of its entries, every lot's remaining the sum of its entries,
    every operation's points the sum of its entries, nothing names a missing row, and no idempotency
    key appears twice."""
    db.flush()
    _check_no_orphans(db, tenant_id)
    entry_sums = dict(db.execute(select(PointsEntry.account_id, func.sum(PointsEntry.amount))
                                 .where(PointsEntry.tenant_id == tenant_id).group_by(PointsEntry.account_id)).all())
    debt_sums = dict(db.execute(select(PointsEntry.account_id, func.sum(PointsEntry.amount))
                                .where(PointsEntry.tenant_id == tenant_id, PointsEntry.lot_id.is_(None))
                                .group_by(PointsEntry.account_id)).all())
    for account in db.scalars(select(PointsAccount).where(PointsAccount.tenant_id == tenant_id)):
        db.refresh(account)
        assert account.balance == (entry_sums.get(account.id) or 0), f"account {account.id}"
        assert account.debt == -(debt_sums.get(account.id) or 0), f"account {account.id} debt"
        assert account.debt >= 0
        if not allow_debt:
            assert account.debt == 0
    lot_sums = dict(db.execute(select(PointsEntry.lot_id, func.sum(PointsEntry.amount))
                               .where(PointsEntry.tenant_id == tenant_id, PointsEntry.lot_id.is_not(None))
                               .group_by(PointsEntry.lot_id)).all())
    for lot in db.scalars(select(PointsLot).where(PointsLot.tenant_id == tenant_id)):
        db.refresh(lot)
        assert lot.remaining == lot_sums.get(lot.id), f"lot {lot.id}"
        assert 0 <= lot.remaining <= lot.amount
    op_sums = dict(db.execute(select(PointsEntry.operation_id, func.sum(PointsEntry.amount))
                              .where(PointsEntry.tenant_id == tenant_id).group_by(PointsEntry.operation_id)).all())
    for op in db.scalars(select(PointsOperation).where(PointsOperation.tenant_id == tenant_id)):
        db.refresh(op)
        assert op.points == (op_sums.get(op.id) or 0), f"operation {op.idempotency_key}"
    keys = db.execute(select(PointsOperation.idempotency_key, func.count()).where(
        PointsOperation.tenant_id == tenant_id).group_by(PointsOperation.idempotency_key)
        .having(func.count() > 1)).all()
    assert keys == []


def _check_no_orphans(db: Session, tenant_id: int) -> None:
    """Every lot and entry names an account, operation (and lot) of the same merchant that exists: the
    ledger's tables have no foreign keys (migration 0013), so this is the check that they hold."""
    tables: dict[str, Any] = {"account": PointsAccount, "operation": PointsOperation, "lot": PointsLot}
    for child, references in ((PointsLot, ("account", "operation")), (PointsEntry, ("account", "operation", "lot"))):
        for name in references:
            parent = tables[name]
            column = getattr(child, f"{name}_id")
            orphans = db.execute(select(child.id, column).outerjoin(
                parent, (parent.id == column) & (parent.tenant_id == child.tenant_id))
                .where(child.tenant_id == tenant_id, column.is_not(None), parent.id.is_(None))).all()
            assert orphans == [], f"{child.__tablename__} naming a missing {name}: {orphans[:5]}"
    profiles = db.execute(select(PointsOperation.id).outerjoin(
        Profile, (Profile.id == PointsOperation.profile_id) & (Profile.tenant_id == PointsOperation.tenant_id))
                          .where(PointsOperation.tenant_id == tenant_id, PointsOperation.profile_id.is_not(None),
                                 Profile.id.is_(None))).all()
    assert profiles == [], f"operations of missing profiles: {profiles[:5]}"
