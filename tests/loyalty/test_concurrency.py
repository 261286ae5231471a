"""Many tills at once: threads earning, spending, holding and retrying on the same accounts, each
in its own committed transaction on a real database (PostgreSQL, and SQLite for good measure)."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from lianjie.db import make_session_factory, transaction, utcnow
from lianjie.errors import LianjieError
from lianjie.loyalty import ledger, programme
from lianjie.loyalty.models import PointsAccount, PointsOperation
from tests.factories import make_merchant
from tests.loyalty.helpers import check_invariants, order, person, refund

THREADS, OPS = 16, 40
CUSTOMERS = 4


def _till(factory: sessionmaker[Session], tenant_id: int, buyers: list[int], n: int,
          told: list[tuple[str, int]], errors: list[BaseException]) -> None:
    """One till's stream of operations; every write it was told succeeded is noted with its points."""
    rng = random.Random(n)
    for i in range(OPS):
        buyer = rng.choice(buyers)
        action = rng.random()
        key = f"t{n}-{i}" if rng.random() > 0.15 else f"shared-{i % 5}-{buyer}"  # some keys race each other
        try:
            with transaction(factory, write=True) as session:
                if action < 0.35:
                    result = ledger.earn(session, tenant_id, buyer, key, points=rng.randint(1, 60))
                elif action < 0.8:
                    result = ledger.spend(session, tenant_id, buyer, key, rng.randint(1, 90), hold=rng.random() < 0.3)
                    if result.hold_status == "held" and not result.replayed and rng.random() < 0.5:
                        result = ledger.cancel_hold(session, tenant_id, result.operation_id)
                else:
                    no = f"O-{n}-{i}"
                    order(session, tenant_id, buyer, ("S", None, rng.randint(100, 9000)), order_no=no,
                          at=utcnow() - dt.timedelta(days=10))
                    refund(session, tenant_id, no, 50, 9000, refund_no=f"{no}-R")
                    continue
            told.append((key, result.points if not result.replayed else 0))
        except LianjieError:
            pass  # insufficient points, a key reused for another request: refused, nothing changed
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised by the test
            errors.append(exc)


def test_concurrent_tills_keep_the_ledger_exact(engine_for_threads: Engine) -> None:
    factory = make_session_factory(engine_for_threads)
    with transaction(factory, write=True) as session:
        shop = make_merchant(session)
        programme.save(session, shop.id, {"pending_days": 0, "overdraw": "clawback_then_write_off"})
        buyers = [person(session, shop.id, f"U{i}") for i in range(CUSTOMERS)]
        for buyer in buyers:
            ledger.earn(session, shop.id, buyer, f"opening-{buyer}", points=200)
        tenant_id = shop.id
    told: list[tuple[str, int]] = []
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_till, args=(factory, tenant_id, buyers, n, told, errors))
               for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with transaction(factory) as session:
        check_invariants(session, tenant_id, allow_debt=False)
        # No key was applied twice: each was stored once, and what clients were told adds up.
        keys = session.execute(select(PointsOperation.idempotency_key, func.count())
                               .where(PointsOperation.tenant_id == tenant_id)
                               .group_by(PointsOperation.idempotency_key).having(func.count() > 1)).all()
        assert keys == []
        stored = dict(session.execute(select(PointsOperation.idempotency_key, PointsOperation.points)
                                      .where(PointsOperation.tenant_id == tenant_id)).all())
        for key, points in told:
            if not key.startswith("shared-"):
                assert stored[key] == points, key
        total = session.scalar(select(func.sum(PointsAccount.balance)).where(PointsAccount.tenant_id == tenant_id))
        assert total == sum(stored.values())
        lowest = session.scalar(select(func.min(PointsAccount.balance)).where(PointsAccount.tenant_id == tenant_id))
        assert lowest is not None
        assert lowest >= 0
        assert len(told) > THREADS * OPS // 3  # the test really exercised the ledger


def test_a_spend_that_waited_for_the_lock_sees_the_lots_as_they_are_now(engine_for_threads: Engine) -> None:
    """A spend's snapshot can be older than the account row it locks (PostgreSQL re-reads only the
    locked row). Here the till holding the lock has spent 30 from the first lot and earned 30 as a
    new lot, and commits while the second till waits: the balance is as before, but the lots are not.
    The waiting spend of 100 must take 70 from the first lot and 30 from the new one, not 100 from
    the first lot as its snapshot showed it."""
    engine = engine_for_threads
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite lets one writer in at a time: no spend waits with an older snapshot")
    factory = make_session_factory(engine)
    with transaction(factory, write=True) as session:
        shop = make_merchant(session)
        programme.save(session, shop.id, {"pending_days": 0})
        buyer = person(session, shop.id, "U1")
        ledger.earn(session, shop.id, buyer, "opening", points=100)
        tenant_id = shop.id
    errors: list[BaseException] = []
    holder = factory()
    try:
        ledger.spend(holder, tenant_id, buyer, "first-till-spend", 30)  # holds the account's lock
        ledger.earn(holder, tenant_id, buyer, "first-till-earn", points=30)
        waiting = threading.Thread(target=_spend_all, args=(factory, tenant_id, buyer, errors))
        waiting.start()
        _wait_until_blocked(engine)  # its snapshot has neither change; its lock will return the new balance
        holder.commit()
    finally:
        holder.close()
    waiting.join()
    assert errors == []
    with transaction(factory) as session:
        check_invariants(session, tenant_id, allow_debt=False)
        assert ledger.balances(session, ledger.customer_of(session, tenant_id, buyer), utcnow())[0] == 0


def _spend_all(factory: sessionmaker[Session], tenant_id: int, buyer: int, errors: list[BaseException]) -> None:
    try:
        with transaction(factory, write=True) as session:
            ledger.spend(session, tenant_id, buyer, "second-till-spend", 100)
    except BaseException as exc:  # noqa: BLE001 - re-raised by the test
        errors.append(exc)


def _wait_until_blocked(engine: Engine) -> None:
    """Until another session waits for a row lock (the second till's spend)."""
    deadline = time.monotonic() + 10
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.exec_driver_sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                           "AND datname = current_database()").scalar()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.01)
    raise AssertionError("the second spend never waited for the lock")
