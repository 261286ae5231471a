"""The warehouse on PySpark (local mode): one SparkSession per process, tables as parquet directories.

Spark without Hive keeps its catalog in memory, and Hive's embedded Derby metastore lets only one
process open it, while the sync job, ``lianjie warehouse sync`` and the server are separate
processes. So the directory *is* the catalog: every table is a folder of parquet files under the
warehouse's root (``<root>/<table>/part-*.parquet``), registered with Spark as an external table of
a database named after the root when a connection first uses it (re-reading what another process
wrote). ``list_tables`` lists the folders.

Writes go around Spark's weak spots:

* rows from Python (a pyarrow table, a pandas frame, an Ibis memtable) are written as a parquet file
  straight into the folder by pyarrow: no Spark job, so filling a small table takes milliseconds;
* a table made from an Ibis expression is written by Spark into a new folder beside the old one and
  swapped in, so it may read the very table it replaces (Spark refuses that for an ordinary
  overwrite, and parquet tables have no DELETE: a sync deletes rows by rewriting the table without
  them, see ``sync.replace_rows``);
* Spark's TIMESTAMP is an instant and the session runs in UTC, so timestamp columns read back as
  ``timestamp('UTC')``, as on DuckDB; json columns are stored as strings and read back as ``json``
  where the declared layout (warehouse/tables.py) says so.

Concurrency: one writer at a time (connection.writing takes the writers' lock, as for a DuckDB
file); a reader in another process sees a table between two writes, except for the instant in which
a rewritten folder is swapped in.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ibis
import ibis.common.exceptions as com
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from ibis.backends.pyspark import Backend
from ibis.backends.pyspark.datatypes import PySparkSchema
from ibis.backends.sql.compilers.pyspark import PySparkCompiler
from ibis.formats.pyarrow import PyArrowData
from pyspark.sql import SparkSession

#: Settings for small data on one machine: no UI, UTC, few partitions, arrow transfers.
SESSION_CONFIG = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.catalogImplementation": "in-memory",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "1000",
    "spark.driver.memory": "1g",
    "spark.driver.extraJavaOptions": "-XX:+UseSerialGC -Xss4m",
}


def session(master: str, **config: str) -> SparkSession:
    """The process's SparkSession, started on first use (a JVM start: seconds) and reused after."""
    builder = SparkSession.builder.master(master).appName("lianjie")
    # Ibis runs some functions (json unwrapping) as Python UDFs: their workers need this interpreter
    # (PySpark reads it from the environment when the session starts).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in (SESSION_CONFIG | config).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def database_name(root: Path) -> str:
    """One Spark database per warehouse folder, so two warehouses in one process never mix tables."""
    return "lianjie_" + hashlib.sha1(str(root).encode()).hexdigest()[:12]


def _spark_arrow(table: pa.Table, schema: ibis.Schema | None) -> pa.Table:
    """``table`` cast to types Spark reads from parquet: microsecond UTC timestamps, json as strings."""
    ibis_schema = schema if schema is not None else ibis.Schema.from_pyarrow(table.schema)
    fields = []
    for name, dtype in ibis_schema.items():
        if dtype.is_timestamp():
            arrow_type = pa.timestamp("us", tz="UTC")
        elif dtype.is_json() or dtype.is_uuid():
            arrow_type = pa.string()
        else:
            arrow_type = dtype.to_pyarrow()
        fields.append(pa.field(name, arrow_type))
    target = pa.schema(fields)
    if table.schema.equals(target):
        return table
    columns = []
    for field in target:
        column = table.column(field.name)
        if pa.types.is_timestamp(column.type) and column.type.tz is None and pa.types.is_timestamp(field.type):
            column = column.cast(pa.timestamp("us")).cast(field.type)  # naive times are taken as UTC
        columns.append(column.cast(field.type))
    return pa.Table.from_arrays(columns, schema=target)


def _python_rows(obj: Any) -> pa.Table | None:
    """Rows that Python holds (written by pyarrow), or None for an expression Spark must compute."""
    if isinstance(obj, pa.Table):
        return obj
    if isinstance(obj, pd.DataFrame):
        return pa.Table.from_pandas(obj, preserve_index=False)
    if isinstance(obj, ir.Table):
        op = obj.op()
        if type(op).__name__ == "InMemoryTable":
            rows: pa.Table = op.data.to_pyarrow(op.schema)
            return rows
        return None
    if isinstance(obj, dict | list):
        return ibis.memtable(obj).to_pyarrow()
    raise TypeError(f"cannot make a warehouse table from {type(obj).__name__}")


#: What this process's Spark catalog holds for our databases: (database, table) -> the registered layout.
_REGISTERED: dict[tuple[str, str], ibis.Schema] = {}


class _Compiler(PySparkCompiler):  # type: ignore[misc]
    """Ibis's PySpark compiler with the aggregates it lacks and Spark SQL has (``bit_or``, which the
    cohort matrix uses: analytics/customers.py)."""

    SIMPLE_OPS = {**PySparkCompiler.SIMPLE_OPS, ops.BitOr: "bit_or"}


class SparkWarehouse(Backend):  # type: ignore[misc]
    """Ibis's PySpark backend bound to one warehouse folder (see the module docstring).

    Layouts come from the parquet footers (pyarrow, no Spark job), and a table is registered with
    Spark (or refreshed, if another write came since) only when a query on this connection first
    reads it: a test that fills thirteen tables and reads two pays for two registrations, and a new
    connection re-reads only what it uses.
    """

    compiler = _Compiler()

    def _configure(self, root: Path, declared: Mapping[str, ibis.Schema]) -> None:
        self._root = root
        self._declared = dict(declared)
        self._db = database_name(root)
        self._fresh: set[str] = set()  # registered and refreshed on this connection
        root.mkdir(parents=True, exist_ok=True)
        # Spark deletes a dropped database's folder: keep it apart from the tables' folders.
        location = (root / ".spark" / self._db).as_uri()
        self._session.sql(f"CREATE DATABASE IF NOT EXISTS `{self._db}` LOCATION '{location}'")

    # ---- the catalog follows the folders ----------------------------------------------------------

    def _qualified(self, name: str) -> str:
        return f"`{self._db}`.`{name}`"

    def _folder(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad warehouse table name {name!r}")
        return self._root / name

    def _layout(self, name: str) -> ibis.Schema | None:
        """The table's columns as its parquet files say (timestamps as UTC instants, declared json)."""
        parts = sorted(self._folder(name).glob("*.parquet"))
        if not parts:
            return None
        declared = self._declared.get(name)
        types = {}
        for column, dtype in ibis.Schema.from_pyarrow(pq.read_schema(parts[0])).items():
            if dtype.is_timestamp():
                dtype = dt.Timestamp(timezone="UTC", nullable=dtype.nullable)
            elif dtype.is_string() and declared is not None and column in declared and declared[column].is_json():
                dtype = dt.JSON(nullable=dtype.nullable)
            types[column] = dtype
        return ibis.schema(types)

    def _sync_catalog(self, name: str) -> ibis.Schema | None:
        """Make Spark's entry for ``name`` match its folder; returns the layout (None: no table)."""
        key = (self._db, name)
        layout = self._layout(name)
        registered = _REGISTERED.get(key)
        if layout is not None and registered is not None and registered.equals(layout):
            self._session.sql(f"REFRESH TABLE {self._qualified(name)}")
        else:
            if registered is not None:
                self._session.sql(f"DROP TABLE IF EXISTS {self._qualified(name)}")
                del _REGISTERED[key]
            if layout is not None:
                self._session.catalog.createTable(f"{self._db}.{name}", path=self._folder(name).as_uri(),
                                                  source="parquet", schema=PySparkSchema.from_ibis(layout))
                _REGISTERED[key] = layout
        return layout

    def _written(self, name: str) -> None:
        """After a write: Spark's entry is brought up to date before the next query that reads it."""
        self._fresh.discard(name)

    def _run_pre_execute_hooks(self, expr: ir.Expr) -> None:
        names = {op.name for op in expr.op().find(ops.DatabaseTable) if op.source is self}
        unbound = {op.name for op in expr.op().find(ops.UnboundTable)}
        if unbound:
            # Expressions built on declared layouts (``ibis.table(schema, name)``, as segment previews
            # are, to skip a schema lookup per table) name tables without a database: ours, here.
            self._session.catalog.setCurrentDatabase(self._db)
        for name in (names | unbound) - self._fresh:
            self._sync_catalog(name)
            self._fresh.add(name)
        super()._run_pre_execute_hooks(expr)

    def _replace_folder(self, name: str, fresh: Path) -> None:
        """Swap a fully written folder in for the table's old one."""
        folder = self._folder(name)
        old = self._root / f".old-{name}-{uuid.uuid4().hex}"
        if folder.exists():
            folder.rename(old)
        fresh.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
        self._written(name)

    def _check_database(self, database: Any) -> None:
        if database not in (None, self._db):
            raise NotImplementedError("a Spark warehouse keeps its tables in its own database")

    # ---- Ibis's table API, on folders -------------------------------------------------------------

    def create_table(self, name: str, /, obj: Any = None, *, schema: Any = None, database: Any = None,
                     temp: bool | None = None, overwrite: bool = False, **_: Any) -> ir.Table:
        self._check_database(database)
        if temp:
            raise NotImplementedError("the Spark warehouse has no temporary tables")
        if not overwrite and self._folder(name).exists():
            raise ValueError(f"table {name!r} already exists")
        fresh = self._root / f".new-{name}-{uuid.uuid4().hex}"
        declared = ibis.schema(schema) if schema is not None else None
        if obj is None:
            if declared is None:
                raise ValueError("create_table needs obj or schema")
            obj = declared.to_pyarrow().empty_table()
        rows = _python_rows(obj)
        if rows is not None:
            fresh.mkdir()
            pq.write_table(_spark_arrow(rows, declared), fresh / "part-0.parquet")
        else:
            self._run_pre_execute_hooks(obj)
            self._session.sql(self.compile(obj)).write.parquet(fresh.as_uri())
        self._replace_folder(name, fresh)
        return self.table(name)

    def insert(self, name: str, /, obj: Any, *, database: Any = None, overwrite: bool = False) -> None:
        self._check_database(database)
        target = self.get_schema(name)
        if overwrite:
            self.create_table(name, obj, schema=target, overwrite=True)
            return
        rows = _python_rows(obj)
        if rows is None:
            self._run_pre_execute_hooks(obj)
            query = self.compile(obj.select(*target.names))
            self._session.sql(query).write.mode("append").parquet(self._folder(name).as_uri())
        else:
            pq.write_table(_spark_arrow(rows.select(list(target.names)), target),
                           self._folder(name) / f"part-{uuid.uuid4().hex}.parquet")
        self._written(name)

    def truncate_table(self, name: str, /, *, database: Any = None) -> None:
        self._check_database(database)
        self.create_table(name, schema=self.get_schema(name), overwrite=True)

    def drop_table(self, name: str, /, *, database: Any = None, force: bool = False) -> None:
        self._check_database(database)
        folder = self._folder(name)
        if not folder.exists() and not force:
            raise com.TableNotFound(name)
        shutil.rmtree(folder, ignore_errors=True)
        self._written(name)

    def rename_table(self, old_name: str, new_name: str) -> None:
        self._folder(old_name).rename(self._folder(new_name))
        self._written(old_name)
        self._written(new_name)

    def list_tables(self, *, like: str | None = None, database: Any = None) -> list[str]:
        self._check_database(database)
        names = sorted(path.name for path in self._root.iterdir()
                       if path.is_dir() and not path.name.startswith(".") and any(path.glob("*.parquet")))
        result: list[str] = self._filter_with_like(names, like)
        return result

    def table(self, name: str, /, *, database: Any = None) -> ir.Table:
        self._check_database(database)
        return super().table(name, database=self._db)

    def get_schema(self, table_name: str, *, catalog: str | None = None, database: str | None = None) -> Any:
        self._check_database(database)
        layout = self._layout(table_name)
        if layout is None:
            raise com.TableNotFound(table_name)
        return layout

    def to_pyarrow(self, expr: ir.Expr, /, *, params: Any = None, limit: Any = None, **kwargs: Any) -> pa.Table:
        """Straight from Spark's arrow batches (Ibis's own goes through pandas, which parses json)."""
        self._run_pre_execute_hooks(expr)
        table_expr = expr.as_table()
        arrow = self._session.sql(self.compile(table_expr, params=params, limit=limit)).toArrow()
        return expr.__pyarrow_result__(PyArrowData.convert_table(arrow, table_expr.schema()))

    def disconnect(self) -> None:
        """Keep the process's SparkSession (starting another costs seconds); it ends with the process."""

    def forget_catalog(self) -> None:
        """Drop what this process's Spark catalog knows of the warehouse, keeping its folders: the
        state a new process starts in (the next connection finds the tables again)."""
        self._session.sql(f"DROP DATABASE IF EXISTS `{self._db}` CASCADE")  # external tables: files stay
        for key in [key for key in _REGISTERED if key[0] == self._db]:
            del _REGISTERED[key]
        self._fresh.clear()

    def drop_warehouse(self) -> None:
        """Drop this warehouse's database and folder (tests' throwaway warehouses)."""
        self.forget_catalog()
        shutil.rmtree(self._root, ignore_errors=True)


def connect(master: str, root: Path, declared: Mapping[str, ibis.Schema], **config: str) -> SparkWarehouse:
    """The warehouse whose tables live in folders under ``root``."""
    root = root.resolve()
    # Spark's own default database lives here instead of ./spark-warehouse (the first session's wins).
    config = {"spark.sql.warehouse.dir": (root / ".spark").as_uri()} | config
    if getattr(ibis.options, "pyspark", None) is None:
        # ibis.pyspark.connect would register the backend's options (e.g. how NaN reads back); our
        # subclass is built directly, so register them here or every float column fails to compile.
        SparkWarehouse.register_options()
    con: SparkWarehouse = SparkWarehouse().connect(session(master, **config))
    con._configure(root, declared)
    return con
