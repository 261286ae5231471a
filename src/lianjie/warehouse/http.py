"""The warehouse as a FastAPI dependency, for the routers that read it (segments, traits, KPIs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import ibis.common.exceptions as ibis_errors
from fastapi import Depends, Request

from lianjie.errors import Conflict
from lianjie.warehouse.connection import connect


def _missing_table(exc: Exception) -> bool:
    """'No such table' as each backend says it: Ibis, DuckDB's catalog, Spark's analyser."""
    text = str(exc)
    return (isinstance(exc, ibis_errors.TableNotFound) or "TABLE_OR_VIEW_NOT_FOUND" in text
            or (type(exc).__name__ == "CatalogException" and "does not exist" in text))


def _not_ready() -> Conflict:
    return Conflict("the warehouse does not hold this table yet: it fills on the first sync (`lianjie warehouse "
                    "sync`, or a minute after `lianjie serve` starts)", code="warehouse_not_ready")


def get_warehouse(request: Request) -> Iterator[Any]:
    """The request's Ibis connection to the warehouse.

    An app may hold one shared connection in ``app.state.warehouse`` (tests hand theirs in this way);
    otherwise the configured warehouse is connected for the request and let go after it, so the
    sync job and the CLI can take their turns at a DuckDB file between requests.
    """
    shared = getattr(request.app.state, "warehouse", None)
    con = shared if shared is not None else connect(request.app.state.settings)
    try:
        yield con
    except Exception as exc:
        # Before the first sync (a new install) the tables are not there: a 409 that says so, not a 500.
        if _missing_table(exc):
            raise _not_ready() from exc
        raise
    finally:
        if shared is None:
            con.disconnect()


Warehouse = Annotated[Any, Depends(get_warehouse)]
