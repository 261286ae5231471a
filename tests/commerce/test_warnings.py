"""What an order could not use is said, never silently dropped: a buyer phone that is not one, a till
line of quantity 0. The order is stored (the sale happened); the answer or the import's file says why."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lianjie.commerce import importing, orders
from lianjie.identity.models import Identifier

ORDER: dict[str, Any] = {"order_no": "SO-1", "ordered_at": "2026-03-08T14:30:00+08:00", "store_code": "SH001",
                         "channel": "offline", "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_fen": 30000}]}


def test_a_phone_that_does_not_parse_is_stored_without_it_and_answered_as_a_warning(
        client: TestClient, db: Session, shop: dict[str, Any]) -> None:
    body = ORDER | {"buyer": {"phone": "call me", "member_no": "M001"}}
    created = client.post("/api/v1/orders", json=body, headers=shop["h"])
    assert created.status_code == 201, created.text
    assert [w["field"] for w in created.json()["warnings"]] == ["buyer.phone"]
    assert "call me" not in created.text  # personal data is not echoed
    assert created.json()["profile_id"] is not None  # the member number still found the buyer
    assert db.scalar(select(func.count()).select_from(Identifier).where(Identifier.type == "phone")) == 0
    replay = client.post("/api/v1/orders", json=body, headers=shop["h"])
    assert (replay.status_code, replay.json()) == (200, created.json())
    assert client.get("/api/v1/orders/SO-1", headers=shop["h"]).json()["warnings"] == []
    good = client.post("/api/v1/orders", json=ORDER | {"order_no": "SO-2", "buyer": {"phone": "139 1234 5678"}},
                       headers=shop["h"])
    assert (good.status_code, good.json()["warnings"]) == (201, [])
    guest = client.post("/api/v1/orders", json=ORDER | {"order_no": "SO-3", "buyer": {"phone": "12"}},
                        headers=shop["h"])
    assert (guest.status_code, guest.json()["profile_id"]) == (201, None)
    assert [w["field"] for w in guest.json()["warnings"]] == ["buyer.phone"]


MAPPING = """
[time]
column = "time"
[columns]
order_no = "no"
sku = "sku"
quantity = "qty"
unit_price = "price"
[buyer]
phone = "mobile"
"""


def _outcomes(path: Path) -> dict[int, tuple[str, str]]:
    return {int(r["line"]): (r["outcome"], r["reason"]) for r in csv.DictReader(path.open(encoding="utf-8"))}


def test_the_import_skips_a_line_of_quantity_0_and_keeps_its_basket(
        db: Session, session_factory: sessionmaker[Session], shop: dict[str, Any], tmp_path: Path) -> None:
    rows = ["no,time,sku,qty,price,mobile",
            "A1,2026-03-01T10:00:00,SKU-1,2,100,13912345678",
            "A1,2026-03-01T10:00:00,SKU-2,0,500,13912345678",  # a voided line
            "A1,2026-03-01T10:00:00,SKU-2,1,300,13912345678",
            "A2,2026-03-01T11:00:00,SKU-1,0,100,",  # nothing sold: no order at all
            "A3,2026-03-01T12:00:00,SKU-1,1,100,not-a-phone"]
    (tmp_path / "till.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "m.toml").write_text(MAPPING, encoding="utf-8")
    mapping = importing.load_mapping(tmp_path / "m.toml")
    report = importing.import_orders(session_factory, shop["tenant"], tmp_path / "till.csv", mapping,
                                     rejects=tmp_path / "r.csv")
    assert (report.orders_created, report.rejected_rows, report.skipped_rows, report.warned_rows) == (2, 0, 2, 1)
    a1 = orders.get_order(db, shop["tenant"], "A1")
    assert [(line.sku, line.quantity) for line in a1.lines] == [("SKU-1", 2), ("SKU-2", 1)]
    assert a1.paid_fen == 500
    found = _outcomes(tmp_path / "r.csv")
    assert set(found) == {3, 5, 6}
    assert found[3][0] == found[5][0] == "skipped"
    assert found[3][1].startswith("qty: 0 units")
    assert found[6][0] == "imported"
    assert found[6][1].startswith("buyer.phone: not a phone number")
    again = importing.import_orders(session_factory, shop["tenant"], tmp_path / "till.csv", mapping,
                                    rejects=tmp_path / "again.csv")
    assert (again.orders_created, again.orders_unchanged, again.skipped_rows) == (0, 2, 2)
