"""Group commit: batches that wait while another is written share one transaction, and each request
still learns exactly what happened to its own messages."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from lianjie import migrate
from lianjie.crypto import get_cipher
from lianjie.db import create_db_engine, make_session_factory, stores_times_as_text, transaction, utcnow
from lianjie.identity import recording
from lianjie.identity.config import IdentityConfig, load_config
from lianjie.identity.models import Event, Identifier
from lianjie.identity.resolution import lock_identity_graph
from lianjie.ingest import commit
from lianjie.ingest.commit import GroupCommit, Stored
from lianjie.ingest.service import check_messages
from tests.factories import make_merchant

Store = tuple[Engine, sessionmaker[Session], int]


@pytest.fixture
def store(tmp_path: Path, database_url: str | None) -> Iterator[Store]:
    """A migrated database of its own (file SQLite or PostgreSQL): the batches really run in parallel."""
    engine = create_db_engine(database_url or f"sqlite:///{tmp_path / 'group.db'}")
    migrate.upgrade_engine(engine)
    factory = make_session_factory(engine)
    with transaction(factory, write=True) as session:
        tenant_id = make_merchant(session).id
    yield engine, factory, tenant_id
    engine.dispose()


def _batch(factory: sessionmaker[Session], tenant_id: int, config: IdentityConfig, tag: str,
           size: int = 50) -> list[recording.Prepared]:
    raws = [{"type": "identify", "messageId": f"{tag}-{i}", "anonymousId": f"{tag}-device-{i}",
             "userId": f"U{i}", "traits": {"city": "上海"}} for i in range(size)]
    received = utcnow()
    good, bad, _ = check_messages(raws, implied_type=None, batch_sent_at=None, received_at=received)
    assert not bad
    return recording.prepare(get_cipher(), config, recording.Source(tenant_id, "web"), good, received,
                            text_times=stores_times_as_text(factory))


def _store_all(committer: GroupCommit, tenant_id: int, config: IdentityConfig,
               batches: list[list[recording.Prepared]], hold_leader: bool = False) -> list[Stored]:
    """Store every batch from its own thread; with ``hold_leader``, all of them queue before any write."""
    results: list[Stored | None] = [None] * len(batches)

    def send(n: int) -> None:
        results[n] = committer.store(config, recording.Source(tenant_id, "web"), batches[n])

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(batches))]
    if hold_leader:
        committer._leader.acquire()  # as if another group were being written
    for thread in threads:
        thread.start()
    if hold_leader:
        deadline = time.monotonic() + 30
        while len(committer._queue) < len(batches) and time.monotonic() < deadline:
            time.sleep(0.01)
        committer._leader.release()
    for thread in threads:
        thread.join(60)
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def _commits(engine: Engine) -> list[int]:
    counted = [0]

    @event.listens_for(engine, "commit")
    def _count(_conn: object) -> None:
        counted[0] += 1

    return counted


def test_batches_waiting_for_a_write_share_the_next_transaction(store: Store) -> None:
    engine, factory, tenant_id = store
    with transaction(factory) as session:
        config = load_config(session, tenant_id)
    batches = [_batch(factory, tenant_id, config, f"b{n}") for n in range(5)]
    commits = _commits(engine)
    results = _store_all(GroupCommit(factory), tenant_id, config, batches, hold_leader=True)
    assert commits[0] == 1
    assert [(r.accepted, r.duplicates) for r in results] == [(50, 0)] * 5
    with transaction(factory) as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 250
        # the 250 messages named 50 users: one identifier each, however the batches were grouped
        assert session.scalar(select(func.count()).select_from(Identifier).where(Identifier.type == "user_id")) == 50


def test_a_group_holds_at_most_the_limit(store: Store,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    engine, factory, tenant_id = store
    monkeypatch.setattr(commit, "MAX_GROUP_MESSAGES", 120)
    with transaction(factory) as session:
        config = load_config(session, tenant_id)
    batches = [_batch(factory, tenant_id, config, f"b{n}") for n in range(5)]
    commits = _commits(engine)
    results = _store_all(GroupCommit(factory), tenant_id, config, batches, hold_leader=True)
    assert commits[0] == 3  # 50 + 50, 50 + 50, 50
    assert sum(r.accepted for r in results) == 250


def test_a_retry_racing_its_first_attempt_is_stored_once(store: Store) -> None:
    engine, factory, tenant_id = store
    with transaction(factory) as session:
        config = load_config(session, tenant_id)
    first = _batch(factory, tenant_id, config, "same")
    batches = [first, _batch(factory, tenant_id, config, "same"), _batch(factory, tenant_id, config, "other")]
    results = _store_all(GroupCommit(factory), tenant_id, config, batches, hold_leader=True)
    assert sorted((r.accepted, r.duplicates) for r in results[:2]) == [(0, 50), (50, 0)]
    assert (results[2].accepted, results[2].duplicates) == (50, 0)
    again = GroupCommit(factory).store(config, recording.Source(tenant_id, "web"), first)
    assert (again.accepted, again.duplicates) == (0, 50)
    with transaction(factory) as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 100


class _GroupsSeen(GroupCommit):
    """A committer that records which merchants' batches each of its transactions wrote."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        super().__init__(factory)
        self.groups: list[list[int]] = []

    def _write(self, group: list[commit._Pending]) -> list[Stored]:
        results = super()._write(group)
        self.groups.append([pending.source.tenant_id for pending in group])
        return results


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_batches_queued_while_the_leader_awaits_the_lock_join_it_if_the_merchant_is_locked(store: Store) -> None:
    """Another writer holds the merchant's lock (SQLite's write lock, PostgreSQL's identity-graph
    lock) while a leader waits for it; a batch of the same merchant queued meanwhile is written in the
    leader's transaction, one of another merchant waits for the next."""
    engine, factory, tenant_id = store
    with transaction(factory, write=True) as session:
        other_id = make_merchant(session, slug="qita", name="其他").id
    with transaction(factory) as session:
        configs = {tenant_id: load_config(session, tenant_id), other_id: load_config(session, other_id)}
    committer = _GroupsSeen(factory)
    results: dict[str, Stored] = {}

    def send(name: str, merchant: int) -> threading.Thread:
        batch = _batch(factory, merchant, configs[merchant], name)
        thread = threading.Thread(target=lambda: results.update(
            {name: committer.store(configs[merchant], recording.Source(merchant, "web"), batch)}))
        thread.start()
        return thread

    with transaction(factory, write=True) as outside:
        lock_identity_graph(outside, tenant_id)
        threads = [send("first", tenant_id)]
        _wait_for(lambda: committer._leader.locked() and not committer._queue)  # the leader took its group
        threads += [send("same", tenant_id), send("other", other_id)]
        _wait_for(lambda: len(committer._queue) == 2)
        time.sleep(0.05)
        assert not results  # nothing is written while the outside writer holds the lock
    for thread in threads:
        thread.join(60)
    assert committer.groups == [[tenant_id, tenant_id], [other_id]]
    assert {name: (r.accepted, r.duplicates) for name, r in results.items()} == {
        "first": (50, 0), "same": (50, 0), "other": (50, 0)}
    with transaction(factory) as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 150


def test_a_batch_that_cannot_be_stored_fails_alone(store: Store) -> None:
    """One batch of a group breaks a constraint (here: an event without a type, as a bug in preparing
    it would): that request fails, every other batch of the group is stored and acknowledged."""
    engine, factory, tenant_id = store
    with transaction(factory) as session:
        config = load_config(session, tenant_id)
    batches = [_batch(factory, tenant_id, config, f"b{n}") for n in range(5)]
    broken = batches[2][7]
    batches[2][7] = dataclasses.replace(broken, head=(*broken.head[:2], None, *broken.head[3:]))
    committer = GroupCommit(factory)
    outcomes: list[object] = [None] * 5

    def send(n: int) -> None:
        try:
            outcomes[n] = committer.store(config, recording.Source(tenant_id, "web"), batches[n])
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            outcomes[n] = exc

    committer._leader.acquire()  # all five queue before the first write: one group
    threads = [threading.Thread(target=send, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    _wait_for(lambda: len(committer._queue) == 5)
    committer._leader.release()
    for thread in threads:
        thread.join(60)
    assert isinstance(outcomes[2], Exception)
    assert [(o.accepted, o.duplicates) for o in outcomes if isinstance(o, Stored)] == [(50, 0)] * 4
    with transaction(factory) as session:
        stored = set(session.scalars(select(Event.message_id)))
    assert len(stored) == 200
    assert not any(message_id.startswith("b2-") for message_id in stored)
