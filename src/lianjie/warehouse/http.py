"""The warehouse as a FastAPI dependency, for the routers that read it (segments, traits, KPIs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import ibis.common.exceptions as ibis_errors
from fastapi import Depends, Request

from lianjie.errors import Conflict
from lianjie.warehouse.connection import connect, writing


def _missing_table(exc: Exception) -> bool:
    """'No such table' as each backend says it: Ibis, DuckDB's catalog, Spark's analyser."""
    text = str(exc)
    return (isinstance(exc, ibis_errors.TableNotFound) or "TABLE_OR_VIEW_NOT_FOUND" in text
            or (type(exc).__name__ == "CatalogException" and "does not exist" in text))


def _not_ready() -> Conflict:
    return Conflict("the warehouse does not hold this table yet: it fills on the first sync (`lianjie warehouse "
                    "sync`, or a minute after `lianjie serve` starts)", code="warehouse_not_ready")


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        # Before the first sync (a new install) the tables are not there: a 409 that says so, not a 500.
        if _missing_table(exc):
            raise _not_ready() from exc
        raise


def get_warehouse(request: Request) -> Iterator[Any]:
    """The request's Ibis connection reading the warehouse.

    An app may hold one shared connection in ``app.state.warehouse`` (tests hand theirs in this way);
    otherwise the configured warehouse is opened for the request, read-only: a DuckDB file as of its
    last completed write, whatever a sync in another process is doing meanwhile (duckdb_file.py).
    """
    shared = getattr(request.app.state, "warehouse", None)
    con = shared if shared is not None else connect(request.app.state.settings)
    try:
        with _translated():
            yield con
    finally:
        if shared is None:
            con.disconnect()


#: How long a request that writes the warehouse (a segment snapshot) waits for a sync to finish
#: before it answers 503 warehouse_busy with Retry-After.
WRITER_WAIT_SECONDS = 20.0


def get_warehouse_writer(request: Request) -> Iterator[Any]:
    """The request's Ibis connection writing the warehouse, published before the response is sent."""
    shared = getattr(request.app.state, "warehouse", None)
    if shared is not None:
        with _translated():
            yield shared
        return
    with writing(request.app.state.settings, wait=WRITER_WAIT_SECONDS) as con, _translated():
        yield con


Warehouse = Annotated[Any, Depends(get_warehouse)]
# scope="function": the write is published before the response leaves, so a 2xx means it is there.
WarehouseWriter = Annotated[Any, Depends(get_warehouse_writer, scope="function")]
