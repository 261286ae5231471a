"""The FastAPI application factory: routers, error handlers, health check."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import Message, Scope

from lianjie import __version__, affinity, httpserver, wiring
from lianjie.analytics.api import router as analytics_router
from lianjie.audience.api import router as audience_router
from lianjie.audience.segments.api import router as segments_router
from lianjie.commerce.api import router as commerce_router
from lianjie.config import Settings, get_settings
from lianjie.db import engine_from_settings, make_session_factory
from lianjie.http import DbSession, install_error_handlers
from lianjie.identity.api import router as identity_router
from lianjie.ingest.api import router as ingest_router
from lianjie.loyalty.api import router as loyalty_router
from lianjie.loyalty.coalition.api import router as coalition_router
from lianjie.loyalty.coupons.api import router as coupons_router
from lianjie.loyalty.membership.api import router as membership_router
from lianjie.tenants.api import router as tenants_router

log = logging.getLogger(__name__)

DESCRIPTION = """
lianjie (连接) connects a retailer's customers across online store, mini-program, stores and tills,
WeCom shopping guides and WeChat Pay into one customer, and runs the relationship.

Management endpoints under `/api/v1` take an **admin key**: `Authorization: Bearer lja_…`.
Errors are `{"error": {"code", "message", "field"}}` with a 4xx status.
"""


def create_app(settings: Settings | None = None,
               session_factory: sessionmaker[Session] | None = None) -> FastAPI:
    """Build the app; tests pass their own session factory bound to a rolled-back transaction."""
    settings = settings or get_settings()
    wiring.install()
    if session_factory is None:  # a server: it commits all the time, so WAL checkpoints run beside it
        session_factory = make_session_factory(engine_from_settings(settings, background_checkpoints=True))
    app = FastAPI(title="lianjie", version=__version__, description=DESCRIPTION)
    app.state.settings = settings
    app.state.session_factory = session_factory
    install_error_handlers(app)
    # The tracking API first: it takes by far the most requests, and a request is matched against
    # the routes in order (each a regular expression, a visible cost per request before this).
    app.include_router(ingest_router)
    app.include_router(tenants_router)
    app.include_router(identity_router)
    app.include_router(commerce_router)
    app.include_router(loyalty_router)
    app.include_router(membership_router)
    app.include_router(coalition_router)
    app.include_router(coupons_router)
    app.include_router(audience_router)
    app.include_router(analytics_router)
    app.include_router(segments_router)

    @app.get("/healthz", tags=["ops"], summary="Liveness and database reachability")
    def healthz(session: DbSession) -> dict[str, Any]:
        session.execute(text("SELECT 1"))
        bind = session.get_bind()
        return {"status": "ok", "version": __version__, "database": bind.dialect.name}

    return app


# Young-generation size for a serving process. Each tracking batch allocates thousands of small
# objects (the parsed messages), so at Python's default of 700 the collector ran dozens of times a
# batch, and walked every object the process had kept since import each time it reached the oldest
# generation: a quarter of ingestion's CPU time.
_SERVING_GC_THRESHOLD = 50_000


def serving_app() -> FastAPI:
    """The app as ``lianjie serve`` runs it: :func:`create_app`, then the collector tuned for serving.

    Objects alive after start-up (modules, routes, the ORM's mappers) live as long as the process;
    ``gc.freeze`` takes them out of every later collection. Before it, the process serves itself
    one request (:func:`_warm_up`). A process of a server with several keeps to a CPU core of its
    own (:mod:`lianjie.affinity`) and holds its share of the connections (:mod:`lianjie.httpserver`).
    Tests build apps with :func:`create_app` and keep Python's defaults.
    """
    settings = get_settings()
    if settings.workers > 1 and settings.pin_workers:
        affinity.claim_core(settings.resolved_var_dir / "run" / "cores")
    if settings.workers > 1 and settings.balance_connections:
        httpserver.balance_connections(settings.resolved_var_dir / "run" / "http", settings.workers)
    app = create_app(settings)
    app.router.lifespan_context = _warmed(app.router.lifespan_context)
    gc.set_threshold(_SERVING_GC_THRESHOLD, *gc.get_threshold()[1:])
    return app


def _warmed(lifespan: Callable[[Any], AbstractAsyncContextManager[Any]]) -> Callable[[Any], Any]:
    """The app's own lifespan (whatever it starts), then :func:`_warm_up` and ``gc.freeze``."""

    @asynccontextmanager
    async def warmed(app: FastAPI) -> AsyncIterator[Any]:
        async with lifespan(app) as state:
            await _warm_up(app)
            gc.collect()
            gc.freeze()
            yield state

    return warmed


async def _warm_up(app: FastAPI) -> None:
    """Serve ``GET /healthz`` in-process before the first client connects.

    A process's first request paid for everything done once: FastAPI building its table of routes,
    importing anyio's thread-pool backend, opening the first database connection. That came to
    about 130 ms, which a till's first call after every restart waited for, and which a process
    did while its peers were already serving. Measured with one worker: a first 100-message batch
    took 95-125 ms without this, 31-44 ms with it (later ones 10-30 ms).
    """
    scope: Scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/healthz", "raw_path": b"/healthz", "query_string": b"",
             "root_path": "", "headers": [(b"host", b"localhost")], "client": None, "server": None}

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: Message) -> None:
        pass

    try:
        await app(scope, receive, send)
    except Exception:  # an optimisation must not stop a server from starting; the failure is logged
        log.exception("warm-up request failed")
