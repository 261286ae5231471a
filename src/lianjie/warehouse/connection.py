"""The warehouse connection: a DuckDB file under ``var/`` unless ``LIANJIE_WAREHOUSE_URL`` names another.

* ``duckdb:///path/to/file.duckdb`` (``duckdb://`` alone: one in memory);
* ``spark://MASTER`` or ``spark://MASTER/abs/path``: PySpark in local mode, e.g. ``spark://local[2]``
  (two cores; ``local[*]`` for all). The tables are parquet folders under the path, by default
  ``var/spark-warehouse``, and persist between processes (warehouse/spark.py says how). Needs the
  ``lianjie[spark]`` extra and a Java runtime (17 or newer); one SparkSession serves the process, so
  the master of the first Spark connection holds until the process ends.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ibis

from lianjie.config import Settings
from lianjie.errors import ValidationFailed
from lianjie.warehouse import duckdb_file
from lianjie.warehouse.tables import LAYOUTS

#: The Spark masters lianjie runs on: local mode only (local, local[N], local[*]).
_MASTER = re.compile(r"local(\[(\d+|\*)\])?")


def warehouse_url(settings: Settings) -> str:
    return settings.warehouse_url or f"duckdb:///{settings.resolved_var_dir / 'warehouse.duckdb'}"


def _unsupported(url: str, why: str) -> ValidationFailed:
    return ValidationFailed(f"LIANJIE_WAREHOUSE_URL {url!r}: {why}", field="warehouse_url",
                            code="unsupported_warehouse")


def parse_spark_url(url: str, settings: Settings) -> tuple[str, Path]:
    """``spark://local[2]/srv/wh`` -> ("local[2]", Path("/srv/wh")); the path defaults under var/."""
    master, slash, path = url.removeprefix("spark://").partition("/")
    if not _MASTER.fullmatch(master):
        raise _unsupported(url, "the Spark master must be local, local[N] or local[*] (local mode)")
    root = Path("/" + path) if slash and path else settings.resolved_var_dir / "spark-warehouse"
    return master, root


def connect_spark(url: str, settings: Settings, **config: str) -> Any:
    """The Spark warehouse named by ``url``, or a 422 saying what is missing to run it."""
    master, root = parse_spark_url(url, settings)
    if shutil.which("java") is None and not _java_home():
        raise _unsupported(url, "Spark needs a Java runtime (17 or newer): install one, e.g. the "
                                "default-jre-headless Debian package, or set JAVA_HOME")
    try:
        # pyspark is the optional extra lianjie[spark]: imported only when a Spark URL asks for it.
        spark = importlib.import_module("lianjie.warehouse.spark")
    except ImportError as exc:
        raise _unsupported(url, f"pyspark is not installed ({exc}); install lianjie[spark]") from exc
    return spark.connect(master, root, LAYOUTS, **config)


def _java_home() -> bool:
    home = os.environ.get("JAVA_HOME")
    return home is not None and (Path(home) / "bin" / "java").exists()


def _duckdb_path(url: str) -> Path | None:
    """duckdb:///abs/file.duckdb, duckdb://rel/file.duckdb; None for ``duckdb://`` (in memory)."""
    path = url.removeprefix("duckdb://")
    return Path(path) if path else None


def connect(settings: Settings) -> Any:
    """An Ibis backend reading the configured warehouse: a DuckDB file as of its last completed write
    (duckdb_file.py), or Spark. Write through :func:`writing`."""
    url = warehouse_url(settings)
    if url.startswith("duckdb://"):
        path = _duckdb_path(url)
        return duckdb_file.open_read_only(path) if path else ibis.duckdb.connect()
    if url.startswith("spark://"):
        return connect_spark(url, settings)
    raise _unsupported(url, "use duckdb:///path/file.duckdb or spark://local[N]/path")


@contextmanager
def writing(settings: Settings, *, wait: float | None = None) -> Iterator[Any]:
    """An Ibis backend that writes the configured warehouse, for the length of the block.

    On a DuckDB file the writes land in a private copy that replaces the file when the block ends
    without an error, so readers never wait and never see half a write; writers take turns, waiting
    ``wait`` seconds at most (None: as long as it takes) before a 503 ``warehouse_busy``. Spark's
    tables are folders that each write replaces or adds to (warehouse/spark.py); its writers take
    the same turns.
    """
    url = warehouse_url(settings)
    if url.startswith("duckdb://") and (path := _duckdb_path(url)) is not None:
        with duckdb_file.write(path, wait=wait) as con:
            yield con
        return
    if url.startswith("spark://"):
        # Two syncs at once would both append the same new rows: Spark writers take turns too.
        with duckdb_file.writers_turn(parse_spark_url(url, settings)[1] / ".writers", wait):
            con = connect(settings)
            try:
                yield con
            finally:
                con.disconnect()
        return
    con = connect(settings)  # duckdb:// alone: a warehouse in this connection's memory
    try:
        yield con
    finally:
        con.disconnect()
