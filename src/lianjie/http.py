"""HTTP plumbing shared by every router: the request's database session, request ids and error rendering.

Every failure leaves as ``{"error": {"code", "message", "field"?, "details"?}}``; on the tracking API
(``/v1/*``) the body also carries ``code`` and ``message`` at the top, where Segment's clients read
them. What a failure is decides its status: the client's mistake is a 4xx (a domain error, a
validation error, an unknown route), a database that stays locked or conflicting is a 503 to retry,
and anything else is a bug: a 500 whose body gives the request id under which the traceback is logged.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import parse_qsl

import orjson
from fastapi import Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lianjie.db import is_retryable, transaction, writer_turn
from lianjie.errors import LianjieError, ServiceBusy, ValidationFailed
from lianjie.validation import find_nul

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


def request_id(request: Request) -> str:
    """The id :class:`RequestIds` gave this request (also sent back as ``X-Request-Id``)."""
    return str(request.scope.get("state", {}).get("request_id", ""))


def _body(path: str, error: dict[str, Any]) -> dict[str, Any]:
    """The error body; the tracking API's also has ``code`` and ``message`` at the top (Segment clients)."""
    if path.startswith("/v1/"):
        return {"success": False, "code": error["code"], "message": error["message"], "error": error}
    return {"error": error}


def error_response(path: str, error: LianjieError, headers: dict[str, str] | None = None) -> JSONResponse:
    """How every domain error leaves the server."""
    if error.status_code == 401:
        headers = {"WWW-Authenticate": "Bearer", **(headers or {})}
    if error.status_code == 503:
        headers = {"Retry-After": "1", **(headers or {})}
    return JSONResponse(_body(path, error.to_dict()), status_code=error.status_code, headers=headers)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "invalid", 413: "too_large"}


def install_error_handlers(app: FastAPI) -> None:
    """One place turns every failure into ``{"error": {"code", "message", "field"?}}``."""
    app.add_middleware(RefuseNul)
    app.add_middleware(RequestIds)

    @app.exception_handler(LianjieError)
    async def _domain(request: Request, exc: LianjieError) -> JSONResponse:
        return error_response(request.url.path, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"field": _field_path(e.get("loc", ())), "message": e.get("msg", "invalid")}
                    for e in exc.errors()]
        first = problems[0] if problems else {"field": "", "message": "invalid request"}
        message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        error = {"code": "invalid", "message": message, "field": first["field"], "details": {"errors": problems}}
        return JSONResponse(_body(request.url.path, error), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Routing's own answers: no such route (404), a route without this method (405).
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"no route {request.method} {request.url.path}; see /docs"
        elif exc.status_code == 405:
            allowed = _allowed_methods(request)
            message = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
            return JSONResponse(_body(request.url.path, {"code": code, "message": message}), status_code=405,
                                headers={"Allow": allowed})
        else:
            message = str(exc.detail)
        return JSONResponse(_body(request.url.path, {"code": code, "message": message}),
                            status_code=exc.status_code, headers=exc.headers)


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette's own 405 names only the first route's)."""
    routes = request.app.router.routes
    return ", ".join(m for m in _METHODS
                     if any(r.matches({**request.scope, "method": m})[0] == Match.FULL for r in routes))


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestIds:
    """Gives every request an id (the client's ``X-Request-Id`` if it sent a sane one) and turns an
    unhandled failure into a JSON 5xx that names it, with the traceback logged under the same id.

    Pure ASGI (no ``BaseHTTPMiddleware``): the tracking API's requests pass through here too, and
    must not pay for a second task per request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-request-id"), "")
        rid = sent if _REQUEST_ID.match(sent) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started:
                raise
            response = self._failure(scope, rid, exc)
            await response(scope, receive, send_with_id)

    @staticmethod
    def _failure(scope: Scope, rid: str, exc: Exception) -> JSONResponse:
        path = str(scope.get("path", ""))
        if isinstance(exc, DBAPIError) and is_retryable(exc):
            log.warning("database busy or unreachable (request %s): %s", rid, exc.orig)
            return error_response(path, ServiceBusy("the database is busy; retry the same request"))
        log.error("unexpected error in %s %s (request %s)", scope.get("method"), path, rid, exc_info=exc)
        error = {"code": "internal", "message": f"an unexpected error; it is logged under request id {rid}",
                 "request_id": rid}
        return JSONResponse(_body(path, error), status_code=500)


class RefuseNul:
    """Refuses a NUL character anywhere in a management request (path, query, JSON body) with a 422
    naming where it is, before any handler runs: PostgreSQL stores no NUL in text, so it would
    otherwise fail deep in a query (a 500), while SQLite would store it.

    The tracking API (``/v1/*``) is left to its own checks, which reject the one message, not the batch.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or path.startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        where = _nul_in_url(path, scope.get("query_string", b""))
        replay: list[Message] = []
        if where is None and scope.get("method") in ("POST", "PUT", "PATCH", "DELETE"):
            replay = await _read_all(receive)
            where = _nul_in_body(b"".join(m.get("body", b"") for m in replay))
        if where is not None:
            error = ValidationFailed("holds a NUL character (\\u0000), which cannot be stored", field=where)
            error.message = f"{where}: {error.message}"
            await error_response(path, error)(scope, receive, send)
            return
        if not replay:
            await self.app(scope, receive, send)
            return

        async def replayed() -> Message:
            return replay.pop(0) if replay else await receive()

        await self.app(scope, replayed, send)


def _nul_in_url(path: str, query: bytes) -> str | None:
    if "\x00" in path:
        return "path"
    if b"%00" not in query and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return f"query.{name}"
    return None


def _nul_in_body(body: bytes) -> str | None:
    if b"\\u0000" not in body:  # how JSON writes a NUL; most bodies never get further than this
        return None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # not JSON: the handler says what is wrong with it
    found = find_nul(document)
    return None if found is None else ("body." + found if found else "body")


async def _read_all(receive: Receive) -> list[Message]:
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages
