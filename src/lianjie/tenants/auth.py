"""Request authentication: ``Authorization: Bearer <admin key>`` and scope checks.

Routers declare what they need as ``caller: Annotated[Caller, RequireScope("stores:read")]``; the
caller's ``tenant_id`` then scopes every query, so one merchant's key never reaches another's rows.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header

from lianjie.errors import Forbidden, Unauthenticated
from lianjie.http import DbSession
from lianjie.tenants.keys import Caller, authenticate
from lianjie.tenants.models import ApiKeyKind


def bearer_secret(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("missing Authorization header; send 'Authorization: Bearer <admin key>'",
                              code="missing_api_key")
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <admin key>'", code="missing_api_key")
    return secret.strip()


def RequireScope(scope: str) -> Any:  # noqa: N802 - reads as a type in signatures
    """A dependency that authenticates an admin key and insists on ``scope``."""

    def dependency(session: DbSession,
                   authorization: Annotated[str | None, Header(include_in_schema=False)] = None) -> Caller:
        caller = authenticate(session, bearer_secret(authorization), ApiKeyKind.ADMIN)
        if not caller.allows(scope):
            raise Forbidden(f"this key lacks the scope {scope!r}", code="missing_scope",
                            details={"required": scope})
        return caller

    return Depends(dependency)
