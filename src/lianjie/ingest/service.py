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

from lianjie.crypto import PiiCipher
from lianjie.identity.config import IdentityConfig
from lianjie.identity.recording import Message, Prepared, Source, prepare
from lianjie.ingest.messages import MAX_MESSAGE_BYTES, Invalid, validate
from lianjie.validation import find_nul


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


_TOO_LARGE = f"message is larger than {MAX_MESSAGE_BYTES // 1024} KB"


def check_messages(raws: Sequence[Any], *, implied_type: str | None, batch_sent_at: dt.datetime | None,
                   received_at: dt.datetime, first_index: int = 0,
                   check_size: bool = True) -> tuple[list[Message], list[Rejected], list[int]]:
    """Validate every message: the good ones in order, the rejected ones, and the good ones' indexes.

    A message is named by its index in the batch, ``raws`` being the batch's messages from
    ``first_index`` on. Without ``check_size`` the caller checks sizes itself (:func:`prepare_batch`
    does, from the JSON it writes anyway).
    """
    good, bad, where = [], [], []
    for index, raw in enumerate(raws, first_index):
        try:
            if check_size and len(orjson.dumps(raw)) > MAX_MESSAGE_BYTES:
                raise Invalid("", _TOO_LARGE)
            good.append(validate(raw, implied_type=implied_type, batch_sent_at=batch_sent_at,
                                 received_at=received_at))
            where.append(index)
        except Invalid as exc:
            bad.append(Rejected(index, exc.field, exc.message))
    return good, bad, where


def prepare_batch(cipher: PiiCipher, config: IdentityConfig, source: Source, raws: Sequence[Any], *,
                  implied_type: str | None, batch_sent_at: dt.datetime | None, received_at: dt.datetime,
                  text_times: bool, first_index: int = 0) -> tuple[list[Prepared], list[Rejected]]:
    """Validate and prepare tracking messages for :func:`~lianjie.identity.recording.store_prepared`.

    A message's size is taken from the JSON :func:`~lianjie.identity.recording.prepare` writes for
    it, rather than by serialising every message once more only to measure it.
    """
    good, bad, where = check_messages(raws, implied_type=implied_type, batch_sent_at=batch_sent_at,
                                      received_at=received_at, first_index=first_index, check_size=False)
    prepared = []
    for item, index, message in zip(prepare(cipher, config, source, good, received_at, text_times=text_times),
                                    where, good, strict=True):
        nul_at = find_nul(message.raw) if item.maybe_nul else None
        if item.size > MAX_MESSAGE_BYTES:
            bad.append(Rejected(index, "", _TOO_LARGE))
        elif nul_at is not None:
            bad.append(Rejected(index, nul_at, "holds a NUL character (\\u0000), which cannot be stored"))
        else:
            prepared.append(item)
    bad.sort(key=lambda rejected: rejected.index)
    return prepared, bad
