"""Property test of the points ledger: random earn / order / refund / spend / hold / adjust / expire
sequences, under each overdraw policy, always leave the ledger consistent."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lianjie.db import utcnow
from lianjie.errors import LianjieError
from lianjie.loyalty import ledger, service
from lianjie.loyalty.models import PointsAccount
from tests.factories import make_merchant
from tests.loyalty.helpers import check_invariants, order, person, refund, set_programme

step = st.one_of(
    st.tuples(st.just("earn"), st.integers(1, 300)),
    st.tuples(st.just("order"), st.integers(0, 50_000), st.integers(0, 40)),  # paid fen, days ago
    st.tuples(st.just("refund"), st.integers(0, 9), st.integers(1, 100)),  # which order, percent
    st.tuples(st.just("spend"), st.integers(1, 400), st.booleans()),  # points, as a hold
    st.tuples(st.just("settle"), st.integers(0, 9), st.booleans()),  # which hold, confirm or cancel
    st.tuples(st.just("adjust"), st.integers(-200, 200).filter(bool)),
    st.tuples(st.just("expire"), st.integers(0, 400)),  # days from now
    st.tuples(st.just("retry"), st.integers(0, 30)),  # repeat an earlier request with its key
)


def total_balance(db: Session, tenant_id: int) -> int:
    return int(db.scalar(select(func.coalesce(func.sum(PointsAccount.balance), 0))
                         .where(PointsAccount.tenant_id == tenant_id)) or 0)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(policy=st.sampled_from(["clawback", "negative_balance", "clawback_then_write_off"]),
       plan=st.lists(step, min_size=4, max_size=25))
def test_random_ledger_operations_keep_every_invariant(db: Session, policy: str, plan: list[tuple[Any, ...]]) -> None:
    savepoint = db.begin_nested()
    try:
        _run(db, policy, plan)
    finally:
        savepoint.rollback()  # also after a failure, so the next example starts clean


def _run(db: Session, policy: str, plan: list[tuple[Any, ...]]) -> None:
    shop = make_merchant(db, "prop-shop")
    set_programme(db, shop.id, overdraw=policy, pending_days=3, expiry={"kind": "days", "n": 30})
    buyer = person(db, shop.id, "U1")
    orders: list[tuple[str, int]] = []
    holds: list[int] = []
    done: list[tuple[str, tuple[Any, ...]]] = []
    for n, action in enumerate(plan):
        before = total_balance(db, shop.id)
        attempt = db.begin_nested()  # what a request's transaction would be
        try:
            change = _apply(db, shop.id, buyer, n, action, orders, holds, done)
        except LianjieError:
            attempt.rollback()
            change = 0
        else:
            attempt.commit()
        if change is not None:
            assert total_balance(db, shop.id) == before + change, action
        check_invariants(db, shop.id, allow_debt=policy != "clawback_then_write_off")
        assert service.balance(db, shop.id, buyer).available >= 0


def _apply(db: Session, tenant_id: int, buyer: int, n: int, action: tuple[Any, ...], orders: list[tuple[str, int]],
           holds: list[int], done: list[tuple[str, tuple[Any, ...]]]) -> int | None:
    """Carry one step out; returns the balance change the ledger reported, or None if not reported."""
    kind = action[0]
    if kind == "earn":
        points = ledger.earn(db, tenant_id, buyer, f"k{n}", points=action[1]).points
        done.append((f"k{n}", action))  # only what succeeded: a refused request stored nothing to replay
        return points
    if kind == "order":
        if action[1]:
            orders.append((order(db, tenant_id, buyer, ("S", None, action[1]),
                                 at=utcnow() - dt.timedelta(days=action[2])), action[1]))
        return None
    if kind == "refund" and orders:
        order_no, paid = orders[action[1] % len(orders)]
        refund(db, tenant_id, order_no, paid * action[2] // 100, paid, refund_no=f"{order_no}-r{n}")
        return None
    if kind == "spend":
        result = ledger.spend(db, tenant_id, buyer, f"k{n}", action[1], hold=action[2])
        done.append((f"k{n}", action))
        if action[2]:
            holds.append(result.operation_id)
        return result.points
    if kind == "settle" and holds:
        hold_id = holds[action[1] % len(holds)]
        settle = ledger.confirm_hold if action[2] else ledger.cancel_hold
        settle(db, tenant_id, hold_id)
        return None
    if kind == "adjust":
        points = ledger.adjust(db, tenant_id, buyer, f"k{n}", action[1], reason="property test",
                               operator="hypothesis").points
        done.append((f"k{n}", action))
        return points
    if kind == "expire":
        run = ledger.expire_due(db, tenant_id, utcnow() + dt.timedelta(days=action[1]))
        return run.released - run.expired
    if kind == "retry" and done:
        key, original = done[action[1] % len(done)]
        if original[0] == "earn":
            assert ledger.earn(db, tenant_id, buyer, key, points=original[1]).replayed
        elif original[0] == "spend":
            assert ledger.spend(db, tenant_id, buyer, key, original[1], hold=original[2]).replayed
        else:
            assert ledger.adjust(db, tenant_id, buyer, key, original[1], reason="property test",
                                 operator="hypothesis").replayed
        return 0
    return None
