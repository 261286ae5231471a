"""The warehouse connection: a DuckDB file under ``var/`` unless ``LIANJIE_WAREHOUSE_URL`` names
another (``duckdb:///path/to/file.duckdb``, or ``duckdb://`` for one in memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ibis

from lianjie.config import Settings
from lianjie.errors import ValidationFailed


def warehouse_url(settings: Settings) -> str:
    return settings.warehouse_url or f"duckdb:///{settings.resolved_var_dir / 'warehouse.duckdb'}"


def connect(settings: Settings) -> Any:
    """An Ibis backend for the configured warehouse."""
    url = warehouse_url(settings)
    if url.startswith("duckdb://"):
        path = url.removeprefix("duckdb://")  # duckdb:///abs/file.duckdb, duckdb://rel/file.duckdb
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            return ibis.duckdb.connect(path)
        return ibis.duckdb.connect()
    raise ValidationFailed(f"LIANJIE_WAREHOUSE_URL {url!r}: only duckdb:// is supported so far",
                           field="warehouse_url", code="unsupported_warehouse")
