"""Group commit: the tracking batches that arrive while one is being written share the next transaction.

A batch's write has a fixed cost that does not depend on its size: BEGIN, the identity-graph lock,
the look-ups of its messageIds and identifiers, one statement per table, COMMIT. With 100-message
batches (the SDKs' default) that fixed cost was a fifth of ingestion's time. So the requests of one
server process queue their prepared batches here, and whichever request finds no write under way
becomes the *leader*: it takes every batch queued so far, stores them in one transaction and hands
each request its own result; batches of the same merchants that arrive while it waits for their
locks join it too. Every request still returns only after its batch is committed.

The messages are stored in arrival order, batch after batch, exactly as separate transactions would
have stored them; a messageId sent twice in one group (a client retrying while its first attempt
is still queued) is stored once and counted as a duplicate of the later batch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import groupby
from weakref import WeakKeyDictionary

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from lianjie.crypto import PiiCipher, get_cipher
from lianjie.db import is_retryable, transaction, writer_turn
from lianjie.errors import ServiceBusy
from lianjie.identity import recording
from lianjie.identity.config import IdentityConfig
from lianjie.identity.resolution import lock_identity_graph

# A group holds at most this many messages: bigger groups save little more and make the batches
# that wait on them slower.
MAX_GROUP_MESSAGES = 5_000
_RETRIES = 5
log = logging.getLogger(__name__)


@dataclass
class Stored:
    """One batch's share of a group's write."""

    accepted: int = 0
    duplicates: int = 0


class CpuTurn:
    """One thread of the process at a time does ingestion's CPU work; a writer holding the write
    lock goes before the requests preparing their batches.

    A plain lock let a leader that had just been given the database's write lock wait for a request
    to finish preparing (a millisecond for 100 messages) while every other process waited on the
    write lock: a quarter of the time the lock was held, nothing was written. Requests now prepare
    in chunks (:data:`PREPARE_CHUNK` messages) and take no new turn while a leader waits for one.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._busy = False
        self._urgent = 0

    @contextmanager
    def turn(self, *, urgent: bool = False) -> Iterator[None]:
        with self._changed:
            self._urgent += urgent
            while self._busy or (self._urgent and not urgent):
                self._changed.wait()
            self._urgent -= urgent
            self._busy = True
        try:
            yield
        finally:
            with self._changed:
                self._busy = False
                self._changed.notify_all()


# Messages a request prepares in one CPU turn: a waiting leader waits at most this long (~0.2 ms).
PREPARE_CHUNK = 25


@dataclass
class _Pending:
    config: IdentityConfig
    source: recording.Source
    prepared: list[recording.Prepared]
    done: threading.Event = field(default_factory=threading.Event)
    stored: Stored | None = None
    error: BaseException | None = None


class GroupCommit:
    """The batches of one session factory (one database) waiting to be written, and their leader.

    One thread of the process at a time does CPU work for ingestion (:class:`CpuTurn`): the leader
    while it writes, or a request preparing part of its batch. A preparing thread would otherwise take
    the GIL each time the leader waits on the database and keep it for up to the 5 ms switch
    interval, while the write lock (SQLite's, or the merchant's identity-graph lock), which every
    process waits on, is held. With one such thread per process, one process prepares on one core
    while another writes on the other.
    """

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self.cpu = CpuTurn()
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._leader = threading.Lock()

    def store(self, config: IdentityConfig, source: recording.Source,
              prepared: list[recording.Prepared]) -> Stored:
        """Store one prepared batch, alone or with others; returns after the commit that holds it."""
        mine = _Pending(config, source, prepared)
        with self._queue_lock:
            self._queue.append(mine)
        while not mine.done.is_set():
            with self._leader:
                if not mine.done.is_set():
                    self._lead()
        if mine.error is not None:
            raise mine.error
        assert mine.stored is not None
        return mine.stored

    def _lead(self) -> None:
        """Write the batches queued so far (up to the group limit) in one transaction."""
        with writer_turn(self.factory):
            self._answer(self._take())

    def _answer(self, group: list[_Pending]) -> None:
        """Write ``group`` (it may grow: :meth:`_join_locked`) and give each request its result.

        A group that fails for a reason other than a busy database is written again batch by batch,
        each in a transaction of its own, so a batch that cannot be stored fails alone and the
        others' messages are stored as if they had never shared its transaction.
        """
        try:
            results = self._write(group)
        except Exception as exc:
            if len(group) == 1 or isinstance(exc, ServiceBusy):
                for pending in group:
                    pending.error = exc
                    pending.done.set()
                return
            log.warning("a group of %d tracking batches failed; writing them one by one", len(group),
                        exc_info=exc)
            for pending in list(group):
                self._answer([pending])
            return
        except BaseException as exc:  # an interrupt stops this thread too; the group's requests are answered
            for pending in group:
                pending.error = exc
                pending.done.set()
            raise
        for pending, stored in zip(group, results, strict=True):
            pending.stored = stored
            pending.done.set()

    def _take(self) -> list[_Pending]:
        with self._queue_lock:
            size, count = 0, 0
            for pending in self._queue:
                if count and size + len(pending.prepared) > MAX_GROUP_MESSAGES:
                    break
                size += len(pending.prepared)
                count += 1
            group, self._queue = self._queue[:count], self._queue[count:]
        return group

    def _join_locked(self, group: list[_Pending], locked: set[int]) -> None:
        """Add to ``group`` the batches queued for the ``locked`` merchants while their locks were awaited.

        On PostgreSQL a leader takes its group and then waits for the merchants' identity-graph
        locks, about as long as another process's whole write. A batch of this process that arrives
        meanwhile rides along instead of waiting for a turn of its own: with 4 clients on 2 processes
        this doubled the group and took the bench from 9,000 to 12,300 events/s. Only merchants
        already locked join, so every writer still takes its locks in one order.
        """
        size = sum(len(pending.prepared) for pending in group)
        with self._queue_lock:
            waiting = []
            for pending in self._queue:
                if pending.source.tenant_id in locked and size + len(pending.prepared) <= MAX_GROUP_MESSAGES:
                    group.append(pending)
                    size += len(pending.prepared)
                else:
                    waiting.append(pending)
            self._queue = waiting

    def _write(self, group: list[_Pending]) -> list[Stored]:
        cipher = get_cipher()
        for attempt in range(_RETRIES):
            try:
                with transaction(self.factory, write=True) as session:
                    # Waiting for a merchant's identity lock (PostgreSQL: while another server
                    # process writes) and for the commit needs no CPU: other requests of this
                    # process prepare meanwhile. Only the work between takes the CPU turn.
                    merchants = {pending.source.tenant_id for pending in group}
                    for tenant_id in sorted(merchants):
                        lock_identity_graph(session, tenant_id)
                    self._join_locked(group, merchants)
                    with self.cpu.turn(urgent=True):
                        return _store_group(session, cipher, group)
            except DBAPIError as exc:
                # A lost race on a new identifier with a writer outside this queue, or a busy
                # database: the prepared batches are untouched, so the whole group is tried again.
                # A violation that comes back every time is a batch that cannot be stored: it is
                # raised as it is, and :meth:`_answer` finds the batch.
                if attempt < _RETRIES - 1 and (isinstance(exc, IntegrityError) or is_retryable(exc)):
                    continue
                if is_retryable(exc):
                    raise ServiceBusy("the event store is busy; retry the same batch (it is safe: "
                                      "messageIds make it idempotent)") from exc
                raise
        raise AssertionError("unreachable")


def _store_group(session: Session, cipher: PiiCipher, group: list[_Pending]) -> list[Stored]:
    """Each merchant's batches as one list, in arrival order; then each batch's share of the result."""
    stored_ids: set[str] = set()
    for _, same_merchant in groupby(sorted(group, key=_merchant), key=_merchant):
        batches = list(same_merchant)
        # The newest config: a merchant's rules changed while batches waited apply to all of them.
        config = batches[-1].config
        merged = [item for pending in batches for item in pending.prepared]
        result = recording.store_prepared(session, cipher, config, batches[0].source, merged)
        stored_ids.update(result.profiles)
    return list(_shares(group, stored_ids))


def _merchant(pending: _Pending) -> int:
    return pending.source.tenant_id


def _shares(group: list[_Pending], stored_ids: set[str]) -> Iterator[Stored]:
    """A message counts as accepted for the first batch of the group that carried it."""
    claimed: set[str] = set()
    for pending in group:
        share = Stored()
        for item in pending.prepared:
            message_id = item.message_id
            if message_id in stored_ids and message_id not in claimed:
                claimed.add(message_id)
                share.accepted += 1
            else:
                share.duplicates += 1
        yield share


_COMMITTERS: WeakKeyDictionary[sessionmaker[Session], GroupCommit] = WeakKeyDictionary()
_COMMITTERS_LOCK = threading.Lock()


def group_commit(factory: sessionmaker[Session]) -> GroupCommit:
    """The process's :class:`GroupCommit` for this session factory."""
    with _COMMITTERS_LOCK:
        committer = _COMMITTERS.get(factory)
        if committer is None:
            committer = _COMMITTERS[factory] = GroupCommit(factory)
        return committer
