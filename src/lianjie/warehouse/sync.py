"""Copying the operational store into the warehouse: incrementally (:func:`sync`) or from scratch
(:func:`rebuild`). See tables.py for how each table is kept up to date.

What a sync remembers lives in the warehouse itself (``_sync_state``: a watermark per table and when
the last sync started), so a warehouse file copied elsewhere carries on from where it was, and
``rebuild`` is just a sync into an empty warehouse.

Merges and unmerges reach the warehouse through ``identity_map`` (profile -> customer), which is
refreshed whole every sync; rows stay attributed to the base profile they were recorded with, as in
the operational store, and analytics join through the map. A PIPL erasure blanks the profile in the
operational store; the next sync deletes the person's events from the warehouse and copies them
again as they now are (without the personal fields), so the warehouse forgets what the store forgot;
on a DuckDB file that sync publishes a compacted file, without the deleted rows' bytes (duckdb_file.py).

Every write goes through Ibis and works on DuckDB and on PySpark, except one: deleting rows by key
(:func:`replace_rows`), which Ibis does not express. DuckDB deletes with its own DELETE; Spark's
parquet tables have none, so there the table is rewritten without those rows (the Spark backend
writes the new folder beside the old one, so the rewrite may read the table it replaces). A first
sync deletes nothing, so loading a large world never rewrites a table.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import duckdb
import ibis
import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lianjie.commerce.models import Order, OrderLine
from lianjie.config import Settings
from lianjie.db import transaction, utcnow
from lianjie.identity.models import Event, Profile
from lianjie.warehouse.connection import writing
from lianjie.warehouse.duckdb_file import compact_when_published
from lianjie.warehouse.tables import (
    EVENTS,
    LAYOUTS,
    ORDER_LINES,
    ORDERS,
    TABLES,
    AnySelect,
    WarehouseTable,
)

STATE = "_sync_state"
STATE_SCHEMA = ibis.schema({"name": "string", "value": "string"})
CHUNK = 50_000
# A transaction that started before the last sync but committed after it has an updated_at before
# the watermark; going back this far picks it up again (rows are replaced by key, so twice is harmless).
LATE_COMMIT_MARGIN = dt.timedelta(minutes=10)

Progress = Callable[[str, int], None]


@dataclass
class SyncReport:
    rows: dict[str, int] = field(default_factory=dict)
    erased_profiles: int = 0
    seconds: float = 0.0


def _ensure_tables(con: Any) -> None:
    """Every table the warehouse declares, empty where missing (``customer_traits`` stays so until the
    traits job's first run; segments read it), and the sync's own state."""
    existing = set(con.list_tables())
    for name, schema in (LAYOUTS | {STATE: STATE_SCHEMA}).items():
        if name not in existing:
            con.create_table(name, schema=schema)


def _state(con: Any) -> dict[str, str]:
    rows = con.table(STATE).to_pyarrow().to_pylist()
    return {r["name"]: r["value"] for r in rows}


def _save_state(con: Any, state: dict[str, str]) -> None:
    rows = pa.table({"name": list(state), "value": list(state.values())})
    _create(con, STATE, rows, STATE_SCHEMA)


@contextmanager
def _staged(con: Any, rows: pa.Table) -> Iterator[Any]:
    """``rows`` as an Ibis memtable that the connection lets go of once written.

    DuckDB sees a memtable through a view over its Arrow data, which Ibis keeps registered until the
    connection closes: a connection that synced more than once (a test's, a long-lived process's)
    still held every chunk it had copied, listed among its tables, the rows of an erased person too.
    """
    staged = ibis.memtable(rows)
    try:
        yield staged
    finally:
        if con.name == "duckdb":
            with suppress(KeyError, duckdb.Error):
                con.con.unregister(staged.op().name)


def _insert(con: Any, name: str, rows: pa.Table) -> None:
    with _staged(con, rows) as staged:
        con.insert(name, staged)


def _create(con: Any, name: str, rows: pa.Table, schema: ibis.Schema) -> None:
    with _staged(con, rows) as staged:
        con.create_table(name, obj=staged, schema=schema, overwrite=True)


def _arrow(table: WarehouseTable, rows: Sequence[Sequence[Any]]) -> pa.Table:
    names = list(table.schema.names)
    columns: dict[str, list[Any]] = {name: [row[i] for row in rows] for i, name in enumerate(names)}
    for name, convert in (table.convert or {}).items():
        columns[name] = [convert(v) for v in columns[name]]
    return pa.Table.from_pydict(columns, schema=table.schema.to_pyarrow())


def _chunks(factory: sessionmaker[Session], query: AnySelect) -> Iterator[Sequence[Sequence[Any]]]:
    with transaction(factory) as session:
        result = session.execute(query.execution_options(yield_per=CHUNK))
        yield from result.partitions()


def replace_rows(con: Any, table: str, key: str, ids: Sequence[int], rows: pa.Table) -> None:
    """Delete ``table``'s rows whose ``key`` is one of ``ids``, then insert ``rows``."""
    if ids:
        gone = pa.table({"id": pa.array(ids, pa.int64())})
        if con.name == "duckdb":
            con.con.register("_lianjie_ids", gone)
            con.con.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT id FROM _lianjie_ids)")
            con.con.unregister("_lianjie_ids")
        else:
            # An anti join (a hash join), not NOT IN (...): Spark plans that as a nested loop over
            # both sides. Rows without a key match nothing and stay, as DELETE ... IN (...) keeps them.
            current, ids_table = con.table(table), ibis.memtable(gone)
            kept = current.anti_join(ids_table, current[key] == ids_table.id)
            con.create_table(table, obj=kept, overwrite=True)
    if rows.num_rows:
        _insert(con, table, rows)


def _rows(factory: sessionmaker[Session], table: WarehouseTable, query: AnySelect) -> pa.Table:
    parts = [_arrow(table, rows) for rows in _chunks(factory, query)]
    return pa.concat_tables(parts) if parts else table.schema.to_pyarrow().empty_table()


def _copy(con: Any, factory: sessionmaker[Session], table: WarehouseTable, query: AnySelect,
          progress: Progress | None) -> tuple[int, list[Sequence[Any]]]:
    """Insert what ``query`` returns; returns the row count and the last chunk's last row."""
    count, last = 0, []
    for rows in _chunks(factory, query):
        _insert(con, table.name, _arrow(table, rows))
        count += len(rows)
        last = [rows[-1]]
        if progress:
            progress(table.name, len(rows))
    return count, last


def _refresh(con: Any, factory: sessionmaker[Session], table: WarehouseTable, progress: Progress | None) -> int:
    whole = _rows(factory, table, table.source())
    _create(con, table.name, whole, table.schema)
    if progress:
        progress(table.name, whole.num_rows)
    return int(whole.num_rows)


def _append(con: Any, factory: sessionmaker[Session], table: WarehouseTable, state: dict[str, str],
            progress: Progress | None) -> int:
    after = int(state.get(table.name, "0"))
    query = _by_id(table, after)
    count, last = _copy(con, factory, table, query, progress)
    if last:
        state[table.name] = str(last[0][0])
    return count


def _by_id(table: WarehouseTable, after: int) -> AnySelect:
    source = table.source()
    id_column = source.selected_columns[0]
    return source.where(id_column > after).order_by(id_column)


def _orders(con: Any, factory: sessionmaker[Session], state: dict[str, str], progress: Progress | None) -> int:
    """Orders changed since the watermark, replaced by id, with all their lines."""
    since = dt.datetime.fromisoformat(state["orders"]) - LATE_COMMIT_MARGIN if "orders" in state else None
    query = ORDERS.source()
    if since is not None:
        query = query.where(Order.updated_at > since)
    count, newest = 0, since
    for rows in _chunks(factory, query.order_by(Order.updated_at)):
        ids = [row[0] for row in rows]
        replaced = ids if since is not None else []  # a first sync has nothing to replace
        replace_rows(con, ORDERS.name, "id", replaced, _arrow(ORDERS, rows))
        lines = _rows(factory, ORDER_LINES, ORDER_LINES.source().where(OrderLine.order_id.in_(ids)))
        replace_rows(con, ORDER_LINES.name, "order_id", replaced, lines)
        count += len(rows)
        newest = rows[-1][-1]
        if progress:
            progress(ORDERS.name, len(rows))
    if newest is not None:
        state["orders"] = newest.isoformat()
    return count


def _erasures(con: Any, factory: sessionmaker[Session], state: dict[str, str]) -> int:
    """Events of profiles erased since the last sync, copied again as the store now holds them."""
    if "started_at" not in state:
        return 0  # first sync: every event was copied as it is now
    since = dt.datetime.fromisoformat(state["started_at"]) - LATE_COMMIT_MARGIN
    with transaction(factory) as session:
        erased = list(session.scalars(select(Profile.id).where(Profile.erased_at > since)))
    if not erased:
        return 0
    upto = int(state.get(EVENTS.name, "0"))
    query = EVENTS.source().where(Event.profile_id.in_(erased), Event.id <= upto)
    replace_rows(con, EVENTS.name, "profile_id", erased, _rows(factory, EVENTS, query))
    return len(erased)


def sync(factory: sessionmaker[Session], con: Any, *, progress: Progress | None = None) -> SyncReport:
    """Bring the warehouse up to date with the operational store (safe to run at any time)."""
    clock = time.perf_counter()
    started = utcnow()
    _ensure_tables(con)
    state = _state(con)
    report = SyncReport()
    for table in TABLES:
        if table.mode == "refresh":
            report.rows[table.name] = _refresh(con, factory, table, progress)
        elif table.mode == "append":
            report.rows[table.name] = _append(con, factory, table, state, progress)
    report.rows[ORDERS.name] = _orders(con, factory, state, progress)
    report.erased_profiles = _erasures(con, factory, state)
    state["started_at"] = started.isoformat()
    _save_state(con, state)
    report.seconds = time.perf_counter() - clock
    return report


def rebuild(factory: sessionmaker[Session], con: Any, *, progress: Progress | None = None) -> SyncReport:
    """Drop every warehouse table and copy everything again."""
    for name in [*(t.name for t in TABLES), STATE]:
        con.drop_table(name, force=True)
    return sync(factory, con, progress=progress)


def run(factory: sessionmaker[Session], settings: Settings, *, rebuild_all: bool = False,
        progress: Progress | None = None) -> SyncReport:
    """Sync (or rebuild) the configured warehouse as one write: readers go on reading the last
    completed sync meanwhile, and see this one once it is complete (connection.writing). A sync
    that erased someone, and a rebuild, publish the file compacted, without the bytes of the rows
    they deleted."""
    with writing(settings) as con:
        report = (rebuild if rebuild_all else sync)(factory, con, progress=progress)
        if rebuild_all or report.erased_profiles:
            compact_when_published(con)
    return report
