"""Desks renewing the same membership at once, each in its own committed transaction on a real database:
every renewal that was told it succeeded is one term, chained after the last, never two in one place."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from lianjie.db import make_session_factory, transaction, utcnow
from lianjie.errors import LianjieError
from lianjie.loyalty.membership import lifecycle, plans
from lianjie.loyalty.membership.models import MembershipPeriod
from lianjie.loyalty.membership.schemas import RenewIn
from tests.loyalty.helpers import person
from tests.loyalty.membership.helpers import make_shop

DESKS, TRIES = 6, 3


def _desk(factory: sessionmaker[Session], tenant_id: int, membership_id: int, n: int, told: list[str],
          errors: list[BaseException]) -> None:
    for i in range(TRIES):
        key = f"desk-{n}-{i}" if i else "shared"  # the first try of every desk races on one key
        try:
            with transaction(factory, write=True) as session:
                written = lifecycle.renew_manually(session, tenant_id, membership_id,
                                                   RenewIn(idempotency_key=key), utcnow())
            if not written.replayed:
                told.append(key)
        except (LianjieError, IntegrityError):
            pass  # the shared key taken meanwhile: refused, nothing changed
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)


def test_concurrent_renewals_chain_without_gaps_or_doubles(engine_for_threads: Engine) -> None:
    factory = make_session_factory(engine_for_threads)
    with transaction(factory, write=True) as session:
        tenant_id = make_shop(session)["tenant"]
        gold = plans.get_plan(session, tenant_id, "gold")
        today = utcnow().astimezone(dt.timezone(dt.timedelta(hours=8))).date()
        first = lifecycle.buy(session, tenant_id, person(session, tenant_id, "U1"), gold, today, 26000,
                              order_no="O-1", key="o1")
        membership_id = first.membership_id
    told: list[str] = []
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_desk, args=(factory, tenant_id, membership_id, n, told, errors))
               for n in range(DESKS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert told.count("shared") == 1
    with transaction(factory) as session:
        terms = session.scalars(select(MembershipPeriod).where(MembershipPeriod.membership_id == membership_id)
                                .order_by(MembershipPeriod.seq)).all()
    assert len(terms) == 1 + len(told)
    assert [t.seq for t in terms] == list(range(1, len(terms) + 1))
    assert all(later.starts_on == earlier.ends_on for earlier, later in zip(terms, terms[1:], strict=False))
    assert [t.status for t in terms] == ["renewed"] * (len(terms) - 1) + ["active"]
