"""Validating tracking calls; storing them is :mod:`lianjie.identity.recording`'s job.

A batch is all-or-nothing in storage (one transaction) but not in validation: a bad message is
reported with its index and field and the good ones are stored. A message whose ``messageId`` was
already stored for the merchant is acknowledged again and stored once, which makes every client
retry safe.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from lianjie.identity.recording import Message
from lianjie.ingest.messages import MAX_MESSAGE_BYTES, Invalid, validate


@dataclass(frozen=True)
class Rejected:
    index: int
    field: str
    message: str


@dataclass
class BatchResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    merges: int = 0
    conflicts: int = 0


def check_messages(raws: Sequence[Any], *, implied_type: str | None, batch_sent_at: dt.datetime | None,
                   received_at: dt.datetime, first_index: int = 0) -> tuple[list[Message], list[Rejected]]:
    """Validate every message; the good ones keep their order. A rejected message is named by its
    index in the batch, ``raws`` being the batch's messages from ``first_index`` on."""
    good, bad = [], []
    for index, raw in enumerate(raws, first_index):
        try:
            if len(orjson.dumps(raw)) > MAX_MESSAGE_BYTES:
                raise Invalid("", f"message is larger than {MAX_MESSAGE_BYTES // 1024} KB")
            good.append(validate(raw, implied_type=implied_type, batch_sent_at=batch_sent_at,
                                 received_at=received_at))
        except Invalid as exc:
            bad.append(Rejected(index, exc.field, exc.message))
    return good, bad
