"""A PIPL erasure reaches the warehouse: after the next sync no table of the warehouse (DuckDB and
PySpark) holds any value of the erased person (phone, name, email, userId, anonymousId, member number,
unionid, the identify traits), while the anonymous counts stay; and a segment snapshot taken before
the erasure no longer exports the person's phone."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lianjie.audience.segments import export as segment_export
from lianjie.audience.segments import service as segments
from lianjie.audience.segments.schemas import HashKind, IdType, SegmentIn, SnapshotIn
from lianjie.commerce import orders
from lianjie.commerce.models import Order
from lianjie.commerce.schemas import OrderIn
from lianjie.config import Settings
from lianjie.crypto import get_cipher
from lianjie.identity import privacy, service
from lianjie.identity.models import Event
from lianjie.identity.schemas import Channel, ConsentIn, Purpose, TagsIn
from lianjie.warehouse import sync
from lianjie.warehouse.connection import connect
from tests.commerce.test_catalogue import tree
from tests.factories import make_merchant
from tests.identity.helpers import customers, msg, send

AT = dt.datetime(2026, 3, 8, 14, 30, tzinfo=dt.UTC)
#: Everything that identifies the person, as sent.
PERSONAL = {"phone": "13987654321", "name": "赵子龙", "email": "zilong.zhao@example.com", "userId": "U-ZZL-7391",
            "anonymousId": "anon-ZZL-7391", "member_no": "MZZL7391", "wechat_unionid": "unionZZL7391",
            "birthday": "1990-04-05", "nickname": "子龙ZZL"}


def _everything(con: Any) -> dict[str, list[dict[str, Any]]]:
    return {name: con.table(name).to_pyarrow().to_pylist() for name in con.list_tables()}


def _found(con: Any, values: set[str]) -> list[tuple[str, str, str]]:
    """(table, column, value) of every cell of the warehouse holding one of ``values``."""
    hits = []
    for table, rows in _everything(con).items():
        for row in rows:
            for column, cell in row.items():
                text = "" if cell is None else str(cell)
                hits += [(table, column, v) for v in values if v in text]
    return hits


def test_after_an_erasure_the_next_sync_leaves_nothing_personal_in_the_warehouse(
        db: Session, session_factory: sessionmaker[Session], warehouse: Any) -> None:
    shop = make_merchant(db)
    tree(db, shop.id)
    p = PERSONAL
    send(db, shop.id, msg(anonymousId=p["anonymousId"], event="Product Viewed",
                          properties={"sku": "SKU-1", "email": p["email"]}))
    send(db, shop.id, msg("identify", userId=p["userId"], anonymousId=p["anonymousId"], traits={
        "phone": p["phone"], "name": p["name"], "email": p["email"], "birthday": p["birthday"],
        "member_no": p["member_no"], "wechat_unionid": p["wechat_unionid"], "nickname": p["nickname"],
        "city": "杭州"}))
    send(db, shop.id, msg("page", userId=p["userId"], name="Home", properties={"path": "/"},
                          context={"traits": {"member_no": p["member_no"]}}))
    send(db, shop.id, msg(anonymousId="stranger-1", event="Product Viewed", properties={"sku": "SKU-2"}))
    orders.record_order(db, get_cipher(), shop.id, OrderIn.model_validate({
        "order_no": "SO-ZZL", "ordered_at": AT.isoformat(), "channel": "offline",
        "buyer": {"member_no": p["member_no"], "phone": p["phone"]},
        "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_fen": 39900}]}))
    [person] = customers(db, shop.id, user_id=p["userId"])
    service.update_tags(db, shop.id, person, TagsIn(add=["vip"]))
    privacy.record_consent(db, shop.id, person, ConsentIn(purpose=Purpose.MARKETING, channel=Channel.ALL,
                                                          granted=True, source="test"))
    db.flush()
    con = warehouse
    sync.sync(session_factory, con)
    segment, _ = segments.create(db, shop.id, SegmentIn.model_validate({"name": "VIP", "rule": {"tag": "vip"}}), "t")
    snapshot = segments.take_snapshot(db, con, shop.id, segment.id, SnapshotIn(), "t")
    taken = segments.get_snapshot(db, shop.id, segment.id, snapshot.id)
    members = [int(v) for v in segments.snapshot_members(con, shop.id, taken).to_pyarrow()
               .column("customer_id").to_pylist()]
    assert members == [person]
    phones = "".join(segment_export.lines(db, get_cipher(), shop.id, members, IdType.PHONE, HashKind.NONE))
    assert p["phone"] in phones
    assert _found(con, {p["member_no"], p["nickname"]})  # the search finds what the warehouse copied
    events_before = len(_everything(con)["events"])

    privacy.erase(db, get_cipher(), shop.id, person)
    db.flush()
    report = sync.sync(session_factory, con)

    assert report.erased_profiles == 1
    assert _found(con, set(p.values())) == []
    phones = "".join(segment_export.lines(db, get_cipher(), shop.id, members, IdType.PHONE, HashKind.NONE))
    assert p["phone"] not in phones
    # Anonymous counts stay: every event and order, the person still one (erased) customer.
    tables = _everything(con)
    assert len(tables["events"]) == events_before == db.scalar(select(func.count()).select_from(Event))
    assert len(tables["orders"]) == db.scalar(select(func.count()).select_from(Order)) == 1
    assert [r["erased"] for r in tables["identity_map"] if r["profile_id"] == person] == [True]
    assert sorted(e["type"] for e in tables["events"]) == ["identify", "page", "track", "track", "track"]


def test_the_duckdb_file_itself_keeps_no_bytes_of_the_erased_person(
        db: Session, session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    """DuckDB's DELETE and CREATE OR REPLACE leave the old rows in the file's free blocks, where a
    copy of the file carries them on: the sync that erased someone publishes a compacted file."""
    shop = make_merchant(db)
    p = PERSONAL
    send(db, shop.id, msg("identify", userId=p["userId"], traits={
        "member_no": p["member_no"], "wechat_unionid": p["wechat_unionid"], "nickname": p["nickname"]}))
    send(db, shop.id, msg(userId=p["userId"], event="Coupon Claimed", properties={"note": p["nickname"]}))
    for n in range(50):  # others' rows around the person's, in the same blocks
        send(db, shop.id, msg("identify", userId=f"other-{n}", traits={"nickname": f"someone {n}"}))
    db.flush()
    path = tmp_path / "warehouse.duckdb"
    settings = Settings(warehouse_url=f"duckdb:///{path}")
    sync.run(session_factory, settings)
    copied = {v for v in p.values() if v.encode() in path.read_bytes()}
    assert copied >= {p["member_no"], p["nickname"]}  # the search can see what the warehouse copied
    [person] = customers(db, shop.id, user_id=p["userId"])
    privacy.erase(db, get_cipher(), shop.id, person)
    db.flush()

    assert sync.run(session_factory, settings).erased_profiles == 1
    data = path.read_bytes()
    assert {v for v in p.values() if v.encode() in data} == set()
    con = connect(settings)
    try:
        assert con.table("events").count().execute() == db.scalar(select(func.count()).select_from(Event))
        traits = [r["traits"] for r in con.table("profiles").to_pyarrow().to_pylist() if r["traits"]]
        assert sum("someone" in t for t in traits) == 50  # the others' traits stay
    finally:
        con.disconnect()
