"""HTTP plumbing shared by every router: the request's database session and error rendering."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from lianjie.db import transaction, writer_turn
from lianjie.errors import Conflict, LianjieError, ServiceBusy

log = logging.getLogger(__name__)


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_session(request: Request) -> Iterator[Session]:
    """The request's unit of work: committed when the handler returns, before the response is sent.

    A request that may write takes SQLite's write lock at BEGIN (a transaction that reads first and
    writes later would otherwise fail at once if another writer committed in between), after
    waiting its turn among this machine's writers (``db.writer_turn``).
    """
    factory = request.app.state.session_factory
    if request.method in READ_METHODS:
        with transaction(factory) as session:
            yield session
        return
    # Writers queue for SQLite's single write lock instead of sleeping in its busy handler.
    with writer_turn(factory), transaction(factory, write=True) as session:
        yield session


# Row ids in URLs: 64-bit, positive; anything else is a 422, never a database overflow.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
# The 200 an idempotent write answers a replayed key with (``responses=REPLAYED`` on its route).
REPLAYED: dict[int | str, dict[str, Any]] = {
    200: {"description": "The idempotency key was applied before: the stored result, nothing applied."}}

# scope="function": the commit above runs before the response leaves, so a 2xx means committed.
DbSession = Annotated[Session, Depends(get_session, scope="function")]


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    return ".".join(parts)


def _render(error: LianjieError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
    if error.status_code == 503:
        headers = {"Retry-After": "1"}
    return JSONResponse({"error": error.to_dict()}, status_code=error.status_code, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """One place turns every failure into ``{"error": {"code", "message", "field"?}}``."""

    @app.exception_handler(LianjieError)
    async def _domain(_: Request, exc: LianjieError) -> JSONResponse:
        return _render(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"field": _field_path(e.get("loc", ())), "message": e.get("msg", "invalid")}
                    for e in exc.errors()]
        first = problems[0] if problems else {"field": "", "message": "invalid request"}
        message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        body = {"error": {"code": "invalid", "message": message, "field": first["field"],
                          "details": {"errors": problems}}}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        # A race between two identical creates lands here; the client may simply retry.
        log.info("integrity error: %s", exc.orig)
        return _render(Conflict("the request conflicts with data stored meanwhile; retry it",
                                    code="conflict_retry"))

    @app.exception_handler(OperationalError)
    async def _busy(_: Request, exc: OperationalError) -> JSONResponse:
        # SQLite still locked after its busy timeout, a PostgreSQL lock or statement timeout, a
        # dropped connection: nothing the client sent is wrong and nothing was committed, so it is a
        # 503 the client retries (SDKs do), not a 500.
        log.warning("database unavailable: %s", exc.orig)
        return _render(ServiceBusy("the database is busy; retry the same request"))
