"""The Spark warehouse's own promises: a ``spark://`` warehouse outlives the connection (and the
process's Spark catalog) that wrote it, a rewrite may read the table it replaces, and a Spark URL
that cannot run says why with a 422."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy.orm import Session, sessionmaker

from lianjie.commerce import orders
from lianjie.commerce.schemas import OrderIn
from lianjie.config import Settings
from lianjie.crypto import get_cipher
from lianjie.errors import ValidationFailed
from lianjie.warehouse import connection, sync
from tests.commerce.test_catalogue import tree
from tests.factories import make_merchant
from tests.warehouse_backends import SPARK_TEST_CONFIG, spark_warehouse

AT = dt.datetime(2026, 3, 8, 14, 30, tzinfo=dt.UTC)
UTC_US = pa.timestamp("us", "UTC")


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_spark_url_warehouse_persists_across_connects(db: Session, session_factory: sessionmaker[Session],
                                                          tmp_path: Path) -> None:
    shop = make_merchant(db)
    tree(db, shop.id)
    for no, price in (("SO-1", 1200), ("SO-2", 345)):
        orders.record_order(db, get_cipher(), shop.id, OrderIn.model_validate(
            {"order_no": no, "ordered_at": AT.isoformat(), "channel": "offline",
             "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_fen": price}]}))
    db.flush()
    root = tmp_path / "wh"
    settings = Settings(warehouse_url=f"spark://local[1]{root}")
    with spark_warehouse(root) as first:  # skips without Java or pyspark
        report = sync.run(session_factory, settings)
        assert report.rows["orders"] == 2
        # A new process starts with an empty Spark catalog: forget this one's, keeping the folders.
        first.forget_catalog()

        second = connection.connect(settings)
        copied = second.table("orders")
        assert copied.paid_fen.sum().execute() == 1200 + 345
        assert set(copied.ordered_at.execute()) == {AT}
        assert {"orders", "order_lines", "events", "_sync_state"} <= set(second.list_tables())
        # and it carries on from its watermarks: no event again; the orders (inside the late-commit
        # margin) are replaced, not copied twice
        again = sync.sync(session_factory, second)
        assert again.rows["events"] == 0
        assert second.table("orders").count().execute() == 2


def test_a_spark_rewrite_may_read_the_table_it_replaces(tmp_path: Path) -> None:
    with spark_warehouse(tmp_path / "wh") as con:
        con.create_table("t", obj=pa.table({"id": [1, 2, 3, None], "at": pa.array([AT] * 4, UTC_US)}))
        t = con.table("t")
        sync.replace_rows(con, "t", "id", [2, 3], pa.table({"id": [3], "at": pa.array([AT], UTC_US)}))
        # an expression made before the rewrite reads the new rows; a row without a key stays
        assert t.count().execute() == 3
        assert sorted(con.table("t").to_pyarrow().to_pylist(), key=lambda r: r["id"] or 0) == [
            {"id": None, "at": AT}, {"id": 1, "at": AT}, {"id": 3, "at": AT}]


@pytest.mark.parametrize(("url", "says"), [
    ("spark://yarn/x", "local mode"),
    ("spark://local[two]", "local mode"),
    ("mysql://x", "duckdb:///"),
])
def test_an_unusable_warehouse_url_is_a_422(url: str, says: str) -> None:
    with pytest.raises(ValidationFailed, match=says) as caught:
        connection.connect(Settings(warehouse_url=url))
    assert caught.value.status_code == 422


def test_spark_without_java_is_a_422_saying_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no java on it
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(ValidationFailed, match="Java runtime"):
        connection.connect_spark(f"spark://local[1]{tmp_path}", Settings(), **SPARK_TEST_CONFIG)


def test_the_spark_url_names_master_and_folder(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    assert connection.parse_spark_url("spark://local[2]", settings) == ("local[2]", tmp_path / "spark-warehouse")
    assert connection.parse_spark_url("spark://local[*]/srv/wh", settings) == ("local[*]", Path("/srv/wh"))


