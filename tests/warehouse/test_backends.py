"""The warehouse fixture itself: every backend takes hand-written rows and gives them back."""

from __future__ import annotations

import datetime as dt
from typing import Any

from lianjie.warehouse.tables import LAYOUTS
from tests.warehouse_backends import fill


def test_fill_gives_back_the_rows_and_empty_tables(warehouse: Any) -> None:
    at = dt.datetime(2026, 5, 1, 2, 0, tzinfo=dt.UTC)
    fill(warehouse, {"orders": [{"id": 1, "tenant_id": 7, "order_no": "SO-1", "paid_fen": 1999, "ordered_at": at},
                                {"id": 2, "tenant_id": 7, "order_no": "SO-2", "paid_fen": 1}]})
    orders = warehouse.table("orders")
    assert orders.paid_fen.sum().execute() == 2000
    assert orders.filter(orders.order_no == "SO-1").ordered_at.execute().tolist()[0].to_pydatetime() == at
    assert set(LAYOUTS) <= set(warehouse.list_tables())
    assert warehouse.table("events").count().execute() == 0
