"""The warehouse backends every warehouse-reading test runs on, from one parametrised fixture
(``warehouse`` in tests/conftest.py), and ``fill`` to put hand-written rows into the warehouse's tables.

Tests of segments, traits and KPIs fill the warehouse directly with rows whose answers they can
count by hand; the sync from the operational store has its own tests (tests/warehouse/test_sync.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import ibis
import pyarrow as pa

from lianjie.warehouse.tables import CUSTOMER_TRAITS, CUSTOMER_TRAITS_SCHEMA, TABLES

BACKENDS = ["duckdb"]
SCHEMAS = {table.name: table.schema for table in TABLES} | {CUSTOMER_TRAITS: CUSTOMER_TRAITS_SCHEMA}


@contextmanager
def open_backend(name: str) -> Iterator[Any]:
    """A fresh, empty warehouse on the named backend."""
    if name != "duckdb":
        raise ValueError(f"unknown warehouse backend {name!r}")
    con = ibis.duckdb.connect()
    try:
        yield con
    finally:
        con.disconnect()


def fill(con: Any, rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Create every warehouse table (empty unless ``rows`` names it) holding exactly the given rows.

    A row may leave out columns; they are null.
    """
    for name, schema in SCHEMAS.items():
        # An empty table from the schema, then an insert: ten times faster than create_table(obj=...).
        con.create_table(name, schema=schema, overwrite=True)
        given = rows.get(name, [])
        if given:
            columns = {column: [row.get(column) for row in given] for column in schema.names}
            con.insert(name, pa.Table.from_pydict(columns, schema=schema.to_pyarrow()))
