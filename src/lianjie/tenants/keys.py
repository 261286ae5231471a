"""API keys: random secrets, stored only as a hash, shown once, revocable, scoped.

*Write keys* identify one event source of a merchant (till, mini-program, web) and can only send
events. *Admin keys* call the management API, limited by scopes such as ``stores:read``; a ``write``
scope implies the ``read`` scope of the same resource, and ``*`` grants everything.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from lianjie.db import driver_execute, json_value, time_binder, utcnow
from lianjie.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationFailed
from lianjie.pagination import paginate
from lianjie.tenants import audit
from lianjie.tenants.models import ApiKey, ApiKeyKind, Merchant
from lianjie.tenants.schemas import ApiKeyCreate

ALL = "*"
RESOURCES = {
    "merchant": "the merchant's own settings",
    "stores": "stores",
    "staff": "staff and shopping guides",
    "apikeys": "API keys",
    "profiles": "customer profiles (OneID)",
    "events": "event history",
    "catalogue": "categories and products",
    "orders": "orders and refunds",
    "loyalty": "points, tiers and memberships",
    "coupons": "coupons",
    "coalition": "coalition points: cards, earning and redeeming at partners, settlement",
    "audit": "the audit log of admin writes",
    "jobs": "the background jobs' schedule and what their runs did for this merchant",
    "audiences": "segments and exports",
    "analytics": "KPIs and reports",
}
SCOPES = frozenset(f"{resource}:{access}" for resource in RESOURCES for access in ("read", "write"))
_PREFIX = {ApiKeyKind.ADMIN: "lja_", ApiKeyKind.WRITE: "ljw_"}
_SHOWN_PREFIX_LEN = 12
_LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Caller:
    """Who is calling: the merchant a key belongs to and what it may do."""

    tenant_id: int
    key_id: int
    kind: ApiKeyKind
    scopes: frozenset[str]
    source: str | None = None
    usage_stale: bool = False  # last_used_at is over a minute old: record_use() when convenient

    def allows(self, scope: str) -> bool:
        return scope_allows(self.scopes, scope)


def scope_allows(granted: Iterable[str], needed: str) -> bool:
    granted = set(granted)
    if ALL in granted or needed in granted:
        return True
    resource, _, access = needed.partition(":")
    return access == "read" and f"{resource}:write" in granted


def hash_secret(secret: str) -> str:
    """SHA-256 is enough: keys carry 256 random bits, so there is nothing to brute-force."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _validate_scopes(kind: ApiKeyKind, scopes: Sequence[str]) -> list[str]:
    if kind == ApiKeyKind.WRITE:
        if scopes:
            raise ValidationFailed("write keys only send events and take no scopes", field="scopes")
        return []
    if not scopes:
        raise ValidationFailed("an admin key needs at least one scope, e.g. 'stores:read' or '*'",
                               field="scopes")
    unknown = sorted(set(scopes) - SCOPES - {ALL})
    if unknown:
        raise ValidationFailed(f"unknown scope(s) {', '.join(unknown)}; known: '*' or resource:read|write "
                               f"for resource in {', '.join(RESOURCES)}", field="scopes", code="unknown_scope")
    return sorted(set(scopes))


def create_api_key(session: Session, tenant_id: int, data: ApiKeyCreate,
                   granted_by: frozenset[str] | None = None) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is not stored and cannot be shown again.

    ``granted_by`` is the scope set of the admin key asking (None for the CLI, run by whoever owns
    the server): a key can hand out no more than it holds, so ``apikeys:write`` is no back door to ``*``.
    """
    scopes = _validate_scopes(data.kind, data.scopes)
    if granted_by is not None:
        beyond = [s for s in scopes if not holds_every_scope(granted_by, [s])]
        if beyond:
            raise Forbidden(f"a key cannot grant scopes it does not hold: {', '.join(beyond)}",
                            code="scope_escalation", field="scopes")
    if data.kind == ApiKeyKind.WRITE and not data.source:
        raise ValidationFailed("a write key names its source, e.g. 'pos' or 'miniprogram'", field="source")
    if data.kind == ApiKeyKind.ADMIN and data.source:
        raise ValidationFailed("only write keys have a source", field="source")
    secret = _PREFIX[data.kind] + secrets.token_urlsafe(32)
    key = ApiKey(tenant_id=tenant_id, kind=data.kind.value, name=data.name, source=data.source,
                 scopes=scopes, prefix=secret[:_SHOWN_PREFIX_LEN], secret_hash=hash_secret(secret))
    session.add(key)
    session.flush()
    audit.record(session, tenant_id, "apikey.create", f"api_key:{key.id}", after=_audited(key))
    return key, secret


def _audited(key: ApiKey) -> dict[str, object]:
    """What the audit log keeps of a key: never its secret or hash."""
    return {"id": key.id, "kind": key.kind, "name": key.name, "source": key.source, "scopes": list(key.scopes),
            "prefix": key.prefix, "revoked_at": key.revoked_at}


def list_api_keys(session: Session, tenant_id: int, *, include_revoked: bool = False, limit: int = 100,
                  offset: int = 0) -> tuple[Sequence[ApiKey], int]:
    """One page of the merchant's keys, oldest first, and how many there are."""
    query = select(ApiKey).where(ApiKey.tenant_id == tenant_id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return paginate(session, query.order_by(ApiKey.id), limit, offset)


def holds_every_scope(granted: frozenset[str], scopes: Iterable[str]) -> bool:
    """Whether a key holding ``granted`` holds each of ``scopes`` itself (``*`` only if it holds ``*``)."""
    return all(ALL in granted if s == ALL else scope_allows(granted, s) for s in scopes)


def revoke_api_key(session: Session, tenant_id: int, key_id: int, *,
                   revoked_by: frozenset[str] | None = None) -> ApiKey:
    """Revoke a key; revoking it again keeps the first revocation time (safe to retry).

    ``revoked_by`` is the scope set of the admin key asking (None for the CLI): a key may revoke
    only a key whose scopes it holds itself, so a ``apikeys:write`` key cannot lock out the owner's
    ``*`` key. The merchant's last live ``*`` admin key is never revoked (409 ``last_full_key``):
    without one nobody could manage keys over the API any more. The merchant's row is locked first,
    so two requests revoking the last two ``*`` keys at once cannot both succeed.
    """
    session.scalar(select(Merchant.id).where(Merchant.id == tenant_id).with_for_update())
    key = session.scalar(select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id))
    if key is None:
        raise NotFound(f"no API key {key_id}", code="apikey_not_found")
    if key.revoked_at is not None:
        return key
    if revoked_by is not None and not holds_every_scope(revoked_by, key.scopes):
        beyond = sorted(s for s in key.scopes if not holds_every_scope(revoked_by, [s]))
        raise Forbidden(f"a key cannot revoke a key with scopes it does not hold: {', '.join(beyond)}",
                        code="scope_escalation", details={"scopes": beyond})
    if key.kind == ApiKeyKind.ADMIN and ALL in key.scopes and _live_full_keys(session, tenant_id) <= 1:
        raise Conflict("this is the merchant's last admin key with '*'; create another one before revoking it",
                       code="last_full_key")
    before = _audited(key)
    key.revoked_at = utcnow()
    session.flush()
    audit.record(session, tenant_id, "apikey.revoke", f"api_key:{key.id}", before=before, after=_audited(key))
    return key


def _live_full_keys(session: Session, tenant_id: int) -> int:
    live = session.scalars(select(ApiKey.scopes).where(ApiKey.tenant_id == tenant_id, ApiKey.kind == ApiKeyKind.ADMIN,
                                                       ApiKey.revoked_at.is_(None))).all()
    return sum(1 for scopes in live if ALL in scopes)


def authenticate(session: Session, secret: str, kind: ApiKeyKind) -> Caller:
    """The caller behind ``secret``; a wrong, revoked or wrong-kind key is refused.

    Every tracking request comes here first, so the key is read with one plain statement (values as
    the driver gives them) rather than through the ORM, which cost as much as storing a few events.
    """
    row = driver_execute(session, "SELECT id, tenant_id, kind, source, scopes, last_used_at, revoked_at"
                                  " FROM api_keys WHERE secret_hash = ?", (hash_secret(secret),)).first()
    if row is None or row.revoked_at is not None:
        raise Unauthenticated("invalid or revoked API key", code="invalid_api_key")
    if row.kind != kind:
        if kind == ApiKeyKind.ADMIN:
            raise Forbidden("this is a write key: it can only send events to /v1/*; use an admin key",
                            code="wrong_key_kind")
        raise Unauthenticated("this is an admin key: send events with a write key", code="wrong_key_kind")
    # Compared in the driver's form: SQLite's fixed-width time text orders as the times do.
    stale = row.last_used_at is None or row.last_used_at < time_binder(session)(utcnow() - _LAST_USED_RESOLUTION)
    scopes = json_value(row.scopes)
    return Caller(tenant_id=row.tenant_id, key_id=row.id, kind=ApiKeyKind(row.kind),
                  scopes=frozenset(scopes or ()), source=row.source, usage_stale=stale)


def record_use(session: Session, caller: Caller) -> None:
    """Note that a key was used (to the minute).

    Kept out of :func:`authenticate` so that authenticating never writes: a read that writes would
    turn every GET into a write transaction, which on SQLite fails rather than waits under load.
    """
    session.execute(update(ApiKey).where(ApiKey.id == caller.key_id).values(last_used_at=utcnow()))
