"""The warehouse sync: a real warehouse (DuckDB and PySpark) filled from the real operational store
(SQLite and PostgreSQL), checked against the store itself after orders, a merge, a refund, an unmerge and an
erasure, and a rebuild that gives the same warehouse as the syncs did."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lianjie.commerce import orders, refunds
from lianjie.commerce.models import Order, OrderLine
from lianjie.commerce.schemas import OrderIn, RefundIn
from lianjie.crypto import get_cipher
from lianjie.identity import merging
from lianjie.identity.models import Event, Merge, Profile
from lianjie.identity.privacy import erase
from lianjie.warehouse import sync
from tests.commerce.test_catalogue import tree
from tests.factories import make_merchant
from tests.identity.helpers import msg, send

AT = dt.datetime(2026, 3, 8, 14, 30, tzinfo=dt.UTC)


def _order(db: Session, tenant_id: int, order_no: str, buyer: dict[str, str] | None, quantity: int) -> None:
    lines = [{"sku": "SKU-1", "quantity": quantity, "unit_price_fen": 39900},
             {"sku": "SKU-2", "quantity": 1, "unit_price_fen": 19900}]
    data: dict[str, Any] = {"order_no": order_no, "ordered_at": AT.isoformat(), "channel": "offline", "lines": lines}
    if buyer:
        data["buyer"] = buyer
    orders.record_order(db, get_cipher(), tenant_id, OrderIn.model_validate(data))


def _warehouse(con: Any, table: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = con.table(table).to_pyarrow().to_pylist()
    return rows


def _customers(con: Any) -> dict[int, int]:
    return {r["profile_id"]: r["customer_id"] for r in _warehouse(con, "identity_map")}


def _check_orders_match(db: Session, con: Any) -> None:
    """Orders and lines in the warehouse are the store's, one row each, with the same amounts."""
    stored = {o.id: (o.paid_fen, o.refunded_fen, o.status) for o in db.scalars(select(Order))}
    copied = {r["id"]: (r["paid_fen"], r["refunded_fen"], r["status"]) for r in _warehouse(con, "orders")}
    assert copied == stored
    assert len(_warehouse(con, "orders")) == len(stored)
    lines = {line.id: (line.quantity, line.refunded_quantity, line.refunded_fen)
             for line in db.scalars(select(OrderLine))}
    assert {r["id"]: (r["quantity"], r["refunded_quantity"], r["refunded_fen"])
            for r in _warehouse(con, "order_lines")} == lines


def test_sync_follows_the_store(db: Session, session_factory: sessionmaker[Session], warehouse: Any) -> None:
    shop = make_merchant(db)
    tree(db, shop.id)
    viewed = msg("track", anonymousId="web-1", event="Product Viewed", properties={"sku": "SKU-1"})
    joined = msg("identify", userId="M001", traits={"member_no": "M001", "vip": "gold"})
    web_id = send(db, shop.id, viewed).profiles[viewed["messageId"]]
    member_id = send(db, shop.id, joined).profiles[joined["messageId"]]
    assert web_id is not None
    assert member_id is not None
    _order(db, shop.id, "SO-1", {"member_no": "M001"}, 2)
    _order(db, shop.id, "SO-2", None, 1)  # a guest
    db.flush()
    con = warehouse

    first = sync.sync(session_factory, con)
    assert first.rows["events"] == db.scalar(select(func.count()).select_from(Event))
    _check_orders_match(db, con)
    assert _customers(con)[web_id] == web_id  # two customers so far
    traits = {r["profile_id"]: r["traits"] for r in _warehouse(con, "profiles")}[member_id]
    assert json.loads(traits) == {"member_no": "M001", "vip": "gold"}

    # The web visitor logs in: the profiles merge, and the warehouse's map follows.
    send(db, shop.id, msg("identify", anonymousId="web-1", userId="M001"))
    refunds.record_refund(db, get_cipher(), shop.id, "SO-1", RefundIn.model_validate(
        {"refund_no": "RF-1", "lines": [{"line_no": 1, "quantity": 1}]}))
    db.flush()
    second = sync.sync(session_factory, con)
    customers = _customers(con)
    assert customers[web_id] == customers[member_id]
    assert second.rows["events"] == 2  # only the new ones: the identify and the refund's "Order Refunded"
    assert len(_warehouse(con, "events")) == db.scalar(select(func.count()).select_from(Event))
    _check_orders_match(db, con)

    # Undone: each is its own customer again.
    merge = db.scalars(select(Merge).where(Merge.tenant_id == shop.id)).one()
    merging.unmerge(db, shop.id, merge.id)
    db.flush()
    sync.sync(session_factory, con)
    customers = _customers(con)
    assert customers[web_id] != customers[member_id]

    # Erased: the warehouse forgets the traits too.
    erase(db, get_cipher(), shop.id, member_id)
    db.flush()
    third = sync.sync(session_factory, con)
    assert third.erased_profiles == 1
    profiles = {r["profile_id"]: r for r in _warehouse(con, "profiles")}
    assert profiles[member_id]["traits"] is None
    assert profiles[member_id]["erased_at"] is not None
    assert {r["profile_id"]: r["erased"] for r in _warehouse(con, "identity_map")}[member_id] is True
    assert len(_warehouse(con, "events")) == db.scalar(select(func.count()).select_from(Event))

    # A rebuild gives what the syncs gave.
    synced = {name: sorted(map(repr, _warehouse(con, name))) for name in ("identity_map", "events", "orders",
                                                                        "order_lines", "profiles")}
    sync.rebuild(session_factory, con)
    assert {name: sorted(map(repr, _warehouse(con, name))) for name in synced} == synced
    assert db.scalar(select(func.count()).select_from(Profile)) == len(_warehouse(con, "profiles"))
