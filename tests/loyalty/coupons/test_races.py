"""Many tills at once, each thread with its own connection and committed transaction, on real
PostgreSQL (and SQLite): a single-use code is redeemed exactly once, stock is never oversold, and a
per-customer limit holds."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from lianjie import migrate
from lianjie.db import create_db_engine, make_session_factory, transaction, writer_turn
from lianjie.errors import LianjieError
from lianjie.identity.models import Profile
from lianjie.loyalty.coupons import issuing, redemption
from lianjie.loyalty.coupons.models import Coupon, CouponRedemption, CouponTemplate
from lianjie.loyalty.coupons.schemas import IssueIn
from tests.loyalty.coupons.helpers import give, redeem_in, shop, template

THREADS = 50
CLAIMS = 200  # one thread and connection each, all released at once


@pytest.fixture
def factory(database_url: str | None, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine: Engine = create_db_engine(database_url or f"sqlite:///{tmp_path / 'lianjie.db'}", pool_size=CLAIMS)
    migrate.upgrade_engine(engine)
    yield make_session_factory(engine)
    engine.dispose()


def at_once(factory: sessionmaker[Session], jobs: list[Callable[[Session], Any]],
            threads_at_most: int = THREADS) -> Counter[str]:
    """Run each job in its own thread and transaction, all released together; count the outcomes
    ('ok' or the refusal's code). Jobs are shared out over at most ``threads_at_most`` threads."""
    outcomes: Counter[str] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()
    count = min(threads_at_most, len(jobs))
    start = threading.Barrier(count)
    share = [jobs[i::count] for i in range(count)]

    def run(mine: list[Callable[[Session], Any]]) -> None:
        start.wait()
        for job in mine:
            try:
                with writer_turn(factory), transaction(factory, write=True) as session:  # as the API does
                    job(session)
                outcome = "ok"
            except LianjieError as exc:
                outcome = exc.code
            except BaseException as exc:  # noqa: BLE001 - re-raised by the test
                errors.append(exc)
                continue
            with lock:
                outcomes[outcome] += 1

    threads = [threading.Thread(target=run, args=(mine,)) for mine in share]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return outcomes


def _profiles(session: Session, tenant_id: int, n: int) -> list[int]:
    rows = [Profile(tenant_id=tenant_id, traits={}, event_count=0) for _ in range(n)]
    session.add_all(rows)
    session.flush()
    return [p.id for p in rows]


def test_fifty_tills_redeem_one_single_use_code(factory: sessionmaker[Session]) -> None:
    with transaction(factory, write=True) as session:
        tenant_id = shop(session).id
        template(session, tenant_id, "ONCE")
        code = give(session, tenant_id, "ONCE", count=1)[0]

    def till(n: int) -> Callable[[Session], Any]:
        return lambda s: redemption.redeem(s, tenant_id, redeem_in(code, f"SO-{n}", ("DRESS", 1, 39900)))

    outcomes = at_once(factory, [till(n) for n in range(THREADS)])
    assert outcomes == {"ok": 1, "coupon_already_redeemed": THREADS - 1}
    with transaction(factory) as session:
        won = session.scalars(select(CouponRedemption.order_no)).all()
        assert len(won) == 1
        assert session.scalar(select(Coupon.order_no)) == won[0]


def test_two_hundred_tills_claim_a_hundred_coupons(factory: sessionmaker[Session]) -> None:
    with transaction(factory, write=True) as session:
        tenant_id = shop(session).id
        template(session, tenant_id, "HUNDRED", stock=100, per_customer_limit=1)
        buyers = _profiles(session, tenant_id, 200)

    def claim(profile_id: int) -> Callable[[Session], Any]:
        return lambda s: issuing.issue(s, tenant_id, "HUNDRED", IssueIn(idempotency_key=f"claim-{profile_id}",
                                                                        profile_id=profile_id))

    outcomes = at_once(factory, [claim(p) for p in buyers], threads_at_most=CLAIMS)
    assert outcomes == {"ok": 100, "coupon_out_of_stock": 100}
    with transaction(factory) as session:
        assert session.scalar(select(CouponTemplate.issued)) == 100
        assert session.scalar(select(func.count()).select_from(Coupon)) == 100
        assert session.scalar(select(func.count(func.distinct(Coupon.profile_id)))) == 100


def test_one_customer_racing_for_more_than_the_limit(factory: sessionmaker[Session]) -> None:
    with transaction(factory, write=True) as session:
        tenant_id = shop(session).id
        template(session, tenant_id, "THREE", per_customer_limit=3)
        buyer = _profiles(session, tenant_id, 1)[0]

    def claim(n: int) -> Callable[[Session], Any]:
        return lambda s: give(s, tenant_id, "THREE", buyer, key=f"k-{n}")

    outcomes = at_once(factory, [claim(n) for n in range(20)])
    assert outcomes == {"ok": 3, "coupon_limit_reached": 17}
    with transaction(factory) as session:
        assert session.scalar(select(func.count()).select_from(Coupon)) == 3
