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
from pathlib import Path
from typing import Any

import ibis

from lianjie.config import Settings
from lianjie.errors import ValidationFailed
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


def connect(settings: Settings) -> Any:
    """An Ibis backend for the configured warehouse."""
    url = warehouse_url(settings)
    if url.startswith("duckdb://"):
        path = url.removeprefix("duckdb://")  # duckdb:///abs/file.duckdb, duckdb://rel/file.duckdb
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            return ibis.duckdb.connect(path)
        return ibis.duckdb.connect()
    if url.startswith("spark://"):
        return connect_spark(url, settings)
    raise _unsupported(url, "use duckdb:///path/file.duckdb or spark://local[N]/path")
