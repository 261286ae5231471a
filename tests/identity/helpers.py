"""Sending Segment messages through the real ingestion pipeline inside the test's transaction."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from sqlalchemy.orm import Session

from lianjie.crypto import get_cipher
from lianjie.db import utcnow
from lianjie.identity import service
from lianjie.identity.recording import Source, StoreResult, store
from lianjie.identity.schemas import ProfileOut
from lianjie.ingest.service import check_messages

_counter = itertools.count()
T0 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC)


def msg(type_: str = "track", *, at: dt.datetime | None = None, **fields: Any) -> dict[str, Any]:
    """A Segment message with a unique messageId and a timestamp (T0 plus a minute per message)."""
    n = next(_counter)
    body: dict[str, Any] = {"type": type_, "messageId": f"m-{n}",
                            "timestamp": (at or T0 + dt.timedelta(minutes=n)).isoformat()}
    if type_ == "track":
        body["event"] = "Product Viewed"
    body.update(fields)
    return body


def send(db: Session, tenant_id: int, *messages: dict[str, Any], source: str = "web") -> StoreResult:
    received = utcnow()
    good, bad, _ = check_messages(list(messages), implied_type=None, batch_sent_at=None, received_at=received)
    assert not bad, bad
    result = store(db, get_cipher(), Source(tenant_id, source), good, received)
    db.flush()
    return result


def profile(db: Session, tenant_id: int, **identifier: str) -> ProfileOut:
    """The one customer holding the given identifier."""
    roots = service.find_by_identifiers(db, get_cipher(), tenant_id, identifier)
    assert len(roots) == 1, f"{identifier} -> {roots}"
    return service.get_profile(db, get_cipher(), tenant_id, roots.pop(), reveal_pii=True)


def customers(db: Session, tenant_id: int, **identifier: str) -> set[int]:
    return service.find_by_identifiers(db, get_cipher(), tenant_id, identifier)
