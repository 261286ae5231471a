"""Group commit: batches that wait while another is written share one transaction, and each request
still learns exactly what happened to its own messages."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
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
