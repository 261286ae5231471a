"""Commerce's one dialect branch: writers of the same order or refund number take turns.

An order or refund number is the idempotency key of its create: a retry must find the first one
stored and be answered with it, and other content under the number must be told what differs. That
check reads before it writes, so two creates of one number must not overlap. SQLite lets one writer
in at a time (a write transaction begins with ``BEGIN IMMEDIATE``), so there this is a no-op. On
PostgreSQL two requests would both find nothing and both insert, and the second would fail on the
unique constraint; here each takes a transaction-scoped advisory lock on a hash of (kind, merchant,
number) before it looks, so the second waits for the first to commit and then finds its row. (A
hash collision only makes two unrelated numbers take turns.) Keys are taken in sorted order, so
batches that share numbers never wait for each other in a circle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

_LOCK = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k")


def lock_key(kind: str, tenant_id: int, number: str) -> int:
    """A signed 64-bit key for ``pg_advisory_xact_lock``, the same in every process."""
    digest = hashlib.blake2b(f"{kind}\x00{tenant_id}\x00{number}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_numbers(session: Session, tenant_id: int, kind: str, numbers: Iterable[str]) -> None:
    """Wait until no other transaction is creating any of these numbers; held until this one ends."""
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({lock_key(kind, tenant_id, number) for number in numbers})
    if keys:
        session.execute(_LOCK, {"keys": keys})
