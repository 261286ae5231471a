"""The warehouse as a FastAPI dependency, for the routers that read it (segments, traits, KPIs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request

from lianjie.warehouse.connection import connect


def get_warehouse(request: Request) -> Iterator[Any]:
    """The request's Ibis connection to the warehouse.

    An app may hold one shared connection in ``app.state.warehouse`` (tests hand theirs in this way);
    otherwise the configured warehouse is connected for the request and let go after it, so the
    sync job and the CLI can take their turns at a DuckDB file between requests.
    """
    shared = getattr(request.app.state, "warehouse", None)
    if shared is not None:
        yield shared
        return
    con = connect(request.app.state.settings)
    try:
        yield con
    finally:
        con.disconnect()


Warehouse = Annotated[Any, Depends(get_warehouse)]
