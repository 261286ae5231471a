"""The audit log: every admin write says who made it, what it changed, when, and the values around it.

Services that change a merchant's settings or act on a customer's behalf (keys, the points
programme, plans, coupons, the coalition, identity review, erasure) call :func:`record` in the
same transaction as the change, so an entry exists exactly when the change was committed. Who is
acting is not a service argument: the entry point that owns the transaction names the actor once
(:func:`act_as`): the admin-key dependency (``key:<id>``), the CLI (``cli:<os user>``), a job
(``job:<name>``). A write made with no named actor is recorded as ``system``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.pagination import paginate
from lianjie.tenants.models import AuditEntry

_ACTOR = "lianjie.audit.actor"
_REQUEST = "lianjie.audit.request_id"
SYSTEM = "system"


def act_as(session: Session, actor: str, *, request_id: str | None = None) -> None:
    """Name who the session's writes are made by (until the session closes)."""
    session.info[_ACTOR] = actor[:120]
    if request_id is not None:
        session.info[_REQUEST] = request_id[:64]


def actor_of(session: Session) -> str:
    return str(session.info.get(_ACTOR, SYSTEM))


def snapshot(value: Any) -> dict[str, Any] | None:
    """A JSON-ready picture of ``value`` for ``before``/``after``: a pydantic model, a dict or None."""
    if value is None:
        return None
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    raise TypeError(f"cannot snapshot {type(value).__name__} for the audit log")


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def record(session: Session, tenant_id: int, action: str, target: str, *,
           before: Any = None, after: Any = None) -> AuditEntry:
    """Append one entry for a write made in this session's transaction.

    ``action`` is ``<thing>.<verb>`` (``apikey.revoke``, ``loyalty_programme.update``); ``target``
    names the thing (``api_key:12``, ``profile:345``). Never put a secret or decrypted PII in
    ``before``/``after``: the log is read by every key with ``audit:read``.
    """
    entry = AuditEntry(tenant_id=tenant_id, actor=actor_of(session), action=action[:64], target=target[:200],
                       before=snapshot(before), after=snapshot(after), request_id=session.info.get(_REQUEST))
    session.add(entry)
    session.flush()
    return entry


def list_entries(session: Session, tenant_id: int, *, action: str | None = None, actor: str | None = None,
                 target: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
                 limit: int = 100, offset: int = 0) -> tuple[Sequence[AuditEntry], int]:
    """The merchant's entries, newest first; ``action`` matches a prefix (``apikey.`` = every key action)."""
    query = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id)
    if action:
        query = query.where(AuditEntry.action.startswith(action, autoescape=True))
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if target:
        query = query.where(AuditEntry.target == target)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    return paginate(session, query.order_by(AuditEntry.id.desc()), limit, offset)
