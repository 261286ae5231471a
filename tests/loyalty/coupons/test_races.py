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
from tests.identity.helpers import customers, msg, send
from tests.loyalty.coupons.helpers import give, redeem_in, sell, shop, template
from tests.loyalty.helpers import person

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
        for n in range(THREADS):
            sell(session, tenant_id, f"SO-{n}", None)  # guests' orders

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


def _one_customer_with_two_profiles(session: Session, tenant_id: int) -> list[int]:
    """A OneID customer of two profiles: a device seen first, then the member it turned out to be."""
    send(session, tenant_id, msg("identify", anonymousId="dev-1"))
    device = customers(session, tenant_id, anonymous_id="dev-1").pop()
    member = person(session, tenant_id, "U1")
    send(session, tenant_id, msg("identify", userId="U1", anonymousId="dev-1"))  # the same person: merged
    assert len(issuing.customer_ids(session, tenant_id, member)) == 2
    return [device, member]


def test_thirty_unbound_codes_redeemed_at_once_by_one_customer_respect_the_limit(
        factory: sessionmaker[Session]) -> None:
    """Each redemption of an unbound code claims it for the buyer; with a limit of 1, one of 30 racing
    redemptions (different codes, the customer's two profiles in turn) gets through."""
    with transaction(factory, write=True) as session:
        tenant_id = shop(session).id
        template(session, tenant_id, "ONE-EACH", per_customer_limit=1)
        codes = give(session, tenant_id, "ONE-EACH", count=30)
        profiles = _one_customer_with_two_profiles(session, tenant_id)
        for n in range(30):
            sell(session, tenant_id, f"SO-{n}", "U1")

    def till(n: int) -> Callable[[Session], Any]:
        return lambda s: redemption.redeem(s, tenant_id, redeem_in(codes[n], f"SO-{n}", ("DRESS", 1, 39900),
                                                                   profile_id=profiles[n % 2]))

    outcomes = at_once(factory, [till(n) for n in range(30)], threads_at_most=30)
    assert outcomes == {"ok": 1, "coupon_limit_reached": 29}
    with transaction(factory) as session:
        assert session.scalar(select(func.count()).select_from(Coupon).where(Coupon.profile_id.in_(profiles))) == 1
        assert session.scalar(select(func.count()).select_from(CouponRedemption)) == 1


def test_issues_claims_and_redemptions_racing_for_one_customer_respect_the_limit(
        factory: sessionmaker[Session]) -> None:
    """Issuing to the customer, claiming a printed code and redeeming an unbound code all count towards
    one limit: of 30 of them at once (10 of each, over the customer's two profiles), exactly 2 succeed."""
    with transaction(factory, write=True) as session:
        tenant_id = shop(session).id
        template(session, tenant_id, "TWO-EACH", per_customer_limit=2)
        codes = give(session, tenant_id, "TWO-EACH", count=20)
        profiles = _one_customer_with_two_profiles(session, tenant_id)
        for n in range(10):
            sell(session, tenant_id, f"SO-{n}", "U1")

    def job(n: int) -> Callable[[Session], Any]:
        profile = profiles[n % 2]
        if n < 10:
            return lambda s: give(s, tenant_id, "TWO-EACH", profile, key=f"issue-{n}")
        if n < 20:
            return lambda s: issuing.claim(s, tenant_id, codes[n], profile)
        return lambda s: redemption.redeem(s, tenant_id, redeem_in(codes[n - 20], f"SO-{n - 20}",
                                                                   ("DRESS", 1, 39900), profile_id=profile))

    outcomes = at_once(factory, [job(n) for n in range(30)], threads_at_most=30)
    assert outcomes == {"ok": 2, "coupon_limit_reached": 28}
    with transaction(factory) as session:
        held = session.scalar(select(func.count()).select_from(Coupon).where(Coupon.profile_id.in_(profiles)))
        assert held == 2
