"""An order is in the merchant's currency, within the configured amount bound and not in the future,
through the API and the till import alike; a refund is not in the future either."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lianjie.commerce import importing
from lianjie.commerce.models import Order, Refund
from lianjie.config import get_settings

NOW = dt.datetime.now(dt.UTC)
ORDER: dict[str, Any] = {"order_no": "SO-1", "ordered_at": "2026-03-08T14:30:00+08:00", "store_code": "SH001",
                         "channel": "offline", "lines": [{"sku": "SKU-1", "quantity": 2, "unit_price_fen": 30000}]}


@pytest.fixture
def max_order_fen(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """LIANJIE_MAX_ORDER_FEN set to ¥1,000 for the test."""
    monkeypatch.setenv("LIANJIE_MAX_ORDER_FEN", "100000")
    get_settings.cache_clear()
    yield 100_000
    monkeypatch.delenv("LIANJIE_MAX_ORDER_FEN")
    get_settings.cache_clear()


def orders_stored(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Order)) or 0


def line(**change: Any) -> dict[str, Any]:
    return ORDER | {"lines": [ORDER["lines"][0] | change]}


@pytest.mark.parametrize(("body", "field", "code"), [
    (ORDER | {"currency": "USD"}, "currency", "wrong_currency"),
    (ORDER | {"ordered_at": (NOW + dt.timedelta(days=2)).isoformat()}, "ordered_at", "in_the_future"),
    (line(unit_price_fen=1_000_000_001, quantity=1), "lines[0].unit_price_fen", "amount_too_large"),
    (line(unit_price_fen=None, list_fen=1_000_000_001), "lines[0].list_fen", "amount_too_large"),
    (line(unit_price_fen=600_000_000), "lines[0].list_fen", "amount_too_large"),  # 2 units of ¥6,000,000
    (ORDER | {"lines": [ORDER["lines"][0] | {"unit_price_fen": 300_000_000}] * 2}, "lines", "amount_too_large"),
], ids=["currency", "future", "unit", "line", "quantity-times-unit", "total"])
def test_an_insane_order_is_a_422_naming_the_field(client: TestClient, db: Session, shop: dict[str, Any],
                                                    body: dict[str, Any], field: str, code: str) -> None:
    response = client.post("/api/v1/orders", json=body, headers=shop["h"])
    assert response.status_code == 422, response.text
    assert (response.json()["error"]["field"], response.json()["error"]["code"]) == (field, code)
    assert orders_stored(db) == 0


def test_at_the_bounds_an_order_is_accepted(client: TestClient, shop: dict[str, Any]) -> None:
    body = ORDER | {"currency": "CNY", "ordered_at": (NOW + dt.timedelta(hours=23)).isoformat(),
                    "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_fen": 1_000_000_000}]}
    response = client.post("/api/v1/orders", json=body, headers=shop["h"])
    assert response.status_code == 201, response.text
    assert response.json()["paid_fen"] == 1_000_000_000


def test_the_bound_is_a_setting(client: TestClient, shop: dict[str, Any], max_order_fen: int) -> None:
    over = client.post("/api/v1/orders", json=line(unit_price_fen=60_000), headers=shop["h"])  # 2 x ¥600
    assert (over.status_code, over.json()["error"]["field"]) == (422, "lines[0].list_fen")
    assert "100000 fen" in over.json()["error"]["message"]
    assert client.post("/api/v1/orders", json=line(unit_price_fen=50_000), headers=shop["h"]).status_code == 201


def test_a_refund_in_the_future_is_a_422(client: TestClient, db: Session, shop: dict[str, Any]) -> None:
    assert client.post("/api/v1/orders", json=ORDER, headers=shop["h"]).status_code == 201
    later = {"refund_no": "RF-1", "refunded_at": (NOW + dt.timedelta(days=2)).isoformat()}
    response = client.post("/api/v1/orders/SO-1/refunds", json=later, headers=shop["h"])
    assert response.status_code == 422, response.text
    assert (response.json()["error"]["field"], response.json()["error"]["code"]) == ("refunded_at", "in_the_future")
    assert db.scalar(select(func.count()).select_from(Refund)) == 0
    soon = later | {"refunded_at": (NOW + dt.timedelta(hours=20)).isoformat()}
    assert client.post("/api/v1/orders/SO-1/refunds", json=soon, headers=shop["h"]).status_code == 201


MAPPING = """
currency = "{currency}"
[time]
column = "time"
[columns]
order_no = "no"
sku = "sku"
quantity = "qty"
unit_price = "price"
[returns]
negative_quantity = true
"""


def test_the_import_rejects_insane_orders_with_the_reason(db: Session, session_factory: sessionmaker[Session],
                                                          shop: dict[str, Any], tmp_path: Path) -> None:
    future = (NOW + dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    rows = ["no,time,sku,qty,price", "A1,2026-03-01T10:00:00,SKU-1,1,100", f"A2,{future},SKU-1,1,100",
            "A3,2026-03-01T10:00:00,SKU-1,1,100", "A3,2026-03-01T10:00:00,SKU-2,1,1000000001",
            "A4,2026-03-01T10:00:00,SKU-1,3,400000000", f"A1,{future},SKU-1,-1,100"]
    (tmp_path / "till.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "cny.toml").write_text(MAPPING.format(currency="CNY"), encoding="utf-8")
    report = importing.import_orders(session_factory, shop["tenant"], tmp_path / "till.csv",
                                     importing.load_mapping(tmp_path / "cny.toml"), rejects=tmp_path / "r.csv")
    assert (report.orders_created, report.rejected_orders, report.refunds_created) == (1, 4, 0)
    reasons = {int(r["line"]): r["reason"] for r in csv.DictReader((tmp_path / "r.csv").open(encoding="utf-8"))}
    assert reasons[3].startswith("in_the_future: ordered_at")
    assert reasons[5].startswith("amount_too_large: lines[1]: unit_price_fen")
    assert reasons[4].startswith("another row of order A3")
    assert reasons[6].startswith("amount_too_large: lines[0]: list_fen")
    assert reasons[7].startswith("in_the_future: refunded_at")
    (tmp_path / "usd.toml").write_text(MAPPING.format(currency="USD"), encoding="utf-8")
    (tmp_path / "usd.csv").write_text("no,time,sku,qty,price\nU1,2026-03-01T10:00:00,SKU-1,1,100\n",
                                      encoding="utf-8")
    usd = importing.import_orders(session_factory, shop["tenant"], tmp_path / "usd.csv",
                                  importing.load_mapping(tmp_path / "usd.toml"), rejects=tmp_path / "u.csv")
    assert (usd.orders_created, usd.rejected_orders) == (0, 1)
    assert "wrong_currency: currency USD" in (tmp_path / "u.csv").read_text(encoding="utf-8")
