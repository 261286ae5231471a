"""The warehouse backends every warehouse-reading test runs on, from one parametrised fixture
(``warehouse`` in tests/conftest.py), and ``fill`` to put hand-written rows into the warehouse's tables.

Tests of segments, traits and KPIs fill the warehouse directly with rows whose answers they can
count by hand; the sync from the operational store has its own tests (tests/warehouse/test_sync.py).

On Spark, one SparkSession (one JVM, local mode, one core) serves the whole test process; each
test gets its own Spark database and folder, dropped after it, so tests never see each other's
tables. Without Java or pyspark the Spark runs are skipped, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pytest

from lianjie.config import Settings
from lianjie.errors import ValidationFailed
from lianjie.warehouse.connection import connect_spark
from lianjie.warehouse.tables import LAYOUTS

BACKENDS = ["duckdb", "spark"]
IN_CI = os.environ.get("CI", "").lower() == "true"
#: Tiny data, one core per test process (pytest -n auto runs one process per core). For queries over a
#: few rows, compiling code costs more than it saves: the JVM's quick compiler only, no whole-stage
#: codegen, no adaptive re-planning (measured: a fill and three queries 1-1.7 s instead of 3.7-5.9 s).
SPARK_TEST_CONFIG = {
    "spark.sql.shuffle.partitions": "1", "spark.default.parallelism": "1", "spark.driver.memory": "768m",
    "spark.driver.extraJavaOptions": "-XX:+UseSerialGC -Xss4m -XX:TieredStopAtLevel=1",
    "spark.sql.codegen.wholeStage": "false", "spark.sql.adaptive.enabled": "false",
}


@cache
def _spark_base() -> Path:
    """This test process's folder for Spark warehouses (one subfolder per test), gone at exit."""
    base = Path(tempfile.mkdtemp(prefix="lianjie-spark-"))
    atexit.register(shutil.rmtree, base, True)
    return base


@contextmanager
def spark_warehouse(root: Path) -> Iterator[Any]:
    """A Spark warehouse in ``root``, through the same URL the app takes; skipped (or, in CI, failed)
    when Java or pyspark is missing."""
    try:
        con = connect_spark(f"spark://local[1]{root}", Settings(), **SPARK_TEST_CONFIG)
    except ValidationFailed as exc:
        if IN_CI:
            pytest.fail(f"CI=true but the Spark warehouse is unavailable: {exc.message}", pytrace=False)
        pytest.skip(f"Spark warehouse unavailable, Spark runs skipped: {exc.message}")
    try:
        yield con
    finally:
        con.drop_warehouse()


@contextmanager
def open_backend(name: str) -> Iterator[Any]:
    """A fresh, empty warehouse on the named backend."""
    if name == "duckdb":
        con = ibis.duckdb.connect()
        try:
            yield con
        finally:
            con.disconnect()
    elif name == "spark":
        root = _spark_base() / uuid.uuid4().hex
        try:
            with spark_warehouse(root) as con:
                yield con
        finally:
            shutil.rmtree(root, ignore_errors=True)
    else:
        raise ValueError(f"unknown warehouse backend {name!r}")


def fill(con: Any, rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Create every warehouse table (empty unless ``rows`` names it) holding exactly the given rows.

    A row may leave out columns; they are null.
    """
    for name, schema in LAYOUTS.items():
        # An empty table from the schema, then an insert: ten times faster than create_table(obj=...).
        con.create_table(name, schema=schema, overwrite=True)
        given = rows.get(name, [])
        if given:
            columns = {column: [row.get(column) for row in given] for column in schema.names}
            con.insert(name, pa.Table.from_pydict(columns, schema=schema.to_pyarrow()))
