"""Request authentication: ``Authorization: Bearer <admin key>`` and scope checks.

Routers declare what they need as ``caller: Annotated[Caller, RequireScope("stores:read")]``; the
caller's ``tenant_id`` then scopes every query, so one merchant's key never reaches another's rows.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from lianjie.db import transaction
from lianjie.errors import Forbidden, Unauthenticated
from lianjie.http import READ_METHODS, DbSession, request_id
from lianjie.tenants import audit
from lianjie.tenants.keys import Caller, authenticate, record_use
from lianjie.tenants.models import ApiKeyKind


def bearer_secret(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("missing Authorization header; send 'Authorization: Bearer <admin key>'",
                              code="missing_api_key")
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <admin key>'", code="missing_api_key")
    return secret.strip()


def _record_use(request: Request, session: Session, caller: Caller) -> None:
    """A writing request notes the use in its own transaction; a reading one in a short separate one."""
    if request.method in READ_METHODS:
        with suppress(OperationalError), transaction(request.app.state.session_factory, write=True) as side:
            record_use(side, caller)  # best effort: a busy database must not refuse a read
    else:
        record_use(session, caller)


def RequireScope(scope: str) -> Any:  # noqa: N802 - reads as a type in signatures
    """A dependency that authenticates an admin key and insists on ``scope``."""

    def dependency(request: Request, session: DbSession,
                   authorization: Annotated[str | None, Header(include_in_schema=False)] = None) -> Caller:
        caller = authenticate(session, bearer_secret(authorization), ApiKeyKind.ADMIN)
        if not caller.allows(scope):
            raise Forbidden(f"this key lacks the scope {scope!r}", code="missing_scope",
                            details={"required": scope})
        if caller.usage_stale:
            _record_use(request, session, caller)
        audit.act_as(session, f"key:{caller.key_id}", request_id=request_id(request))
        return caller

    return Depends(dependency)
