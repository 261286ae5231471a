"""Property test of settlement: random awards, redemptions, block purchases and term changes at
three merchants over a month, then the month closed; the statement equals the one a plain Python
model of the rules computes (FIFO by expiry, prepaid blocks, prices per point in milli-fen, one
half-up rounding per line), nets to zero and is reproduced from the ledger."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from lianjie.errors import LianjieError
from lianjie.loyalty.coalition import points, settlement, setup
from lianjie.loyalty.coalition.schemas import MemberIn
from tests.loyalty.coalition.helpers import link, local, make_world
from tests.loyalty.helpers import person

MERCHANTS = ("huamei", "yuedong", "ccc")  # the operator is a member too
EXPIRY_DAYS = 10
step = st.one_of(
    st.tuples(st.just("earn"), st.integers(0, 2), st.integers(1, 300)),
    st.tuples(st.just("redeem"), st.integers(0, 2), st.integers(1, 400)),
    st.tuples(st.just("purchase"), st.integers(0, 2), st.integers(1, 500)),
    st.tuples(st.just("terms"), st.integers(0, 2), st.integers(0, 20_000), st.integers(0, 20_000)),
)


@dataclass
class Model:
    """What the statement should say, kept by hand."""

    issue: dict[str, int]  # milli-fen per point now
    redeem: dict[str, int]
    prepaid: dict[str, bool]
    block: dict[str, int] = field(default_factory=dict)
    lots: list[list[Any]] = field(default_factory=list)  # [expires_at, seq, issuer, remaining]
    milli: dict[tuple[str, str], int] = field(default_factory=dict)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, merchant: str, what: str, points: int, price: int) -> None:
        self.counts[(merchant, what)] = self.counts.get((merchant, what), 0) + points
        self.milli[(merchant, what)] = self.milli.get((merchant, what), 0) + points * price


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(step, min_size=3, max_size=18))
def test_random_months_settle_as_the_model_says(db: Session, plan: list[tuple[Any, ...]]) -> None:
    savepoint = db.begin_nested()
    try:
        _run(db, plan)
    finally:
        savepoint.rollback()
        db.expunge_all()  # ids are reused after the rollback: no stale object may stay in the identity map


def _run(db: Session, plan: list[tuple[Any, ...]]) -> None:
    w = make_world(db, a_terms=("10.5", "8.25", "postpaid"), b_terms=("12", "9.125", "prepaid"),
                   expiry_days=EXPIRY_DAYS)
    op = w.acc(db, w.operator)
    setup.put_member(db, op, "ccc", MemberIn(issue_price_fen_per_point=Decimal("7.001"),
                                             redemption_value_fen_per_point=Decimal("6.999"), funding="postpaid"))
    db.flush()
    tenants = {"huamei": w.a.id, "yuedong": w.b.id, "ccc": w.operator.id}
    accs = {m: setup.access(db, "tpoint", tenants[m]) for m in MERCHANTS}
    accs["ccc"].member.joined_at = local(2026, 1, 1)  # type: ignore[union-attr]
    card = link(db, accs["huamei"], person(db, w.a.id, "P@A"))
    for m in ("yuedong", "ccc"):
        link(db, accs[m], person(db, tenants[m], f"P@{m}"), card_no=card)
    model = Model(issue={"huamei": 10_500, "yuedong": 12_000, "ccc": 7_001},
                  redeem={"huamei": 8_250, "yuedong": 9_125, "ccc": 6_999},
                  prepaid={"huamei": False, "yuedong": True, "ccc": False}, block=dict.fromkeys(MERCHANTS, 0))
    start = local(2026, 5, 1)
    for n, action in enumerate(plan):
        now = start + dt.timedelta(days=30 * n / len(plan), hours=1)
        merchant = MERCHANTS[action[1]]
        acc = accs[merchant]
        if action[0] == "terms":
            if model.prepaid[merchant]:
                continue  # keeps the model simple: a prepaid member cannot switch with points in its block
            setup.put_member(db, op, merchant, MemberIn(issue_price_fen_per_point=Decimal(action[2]) / 1000,
                                                        redemption_value_fen_per_point=Decimal(action[3]) / 1000))
            db.refresh(acc.member)
            model.issue[merchant], model.redeem[merchant] = action[2], action[3]
            continue
        amount = action[2]
        try:
            if action[0] == "earn":
                points.earn(db, acc, card, f"k{n}", amount, now=now)
            elif action[0] == "redeem":
                points.redeem(db, acc, card, f"k{n}", amount, now=now)
            else:
                points.purchase(db, acc, f"k{n}", amount, now=now)
            refused = None
        except LianjieError as exc:
            refused = exc.code
        assert refused == _apply(model, action[0], merchant, amount, now, n)
    _, closed = settlement.close(db, w.coalition, "2026-05", closed_by="t", now=local(2026, 6, 1, 1))
    assert closed
    end = local(2026, 6, 1)
    for lot in model.lots:
        if lot[0] <= end and lot[3]:
            model.counts[(lot[2], "expire")] = model.counts.get((lot[2], "expire"), 0) + lot[3]
    lines = {line.merchant: line for line in settlement.statement(db, op, "2026-05").lines if line.party == "merchant"}
    for m in MERCHANTS:
        owed = (model.milli.get((m, "issue"), 0) + 500) // 1000 + (model.milli.get((m, "purchase"), 0) + 500) // 1000
        due = (model.milli.get((m, "redeem"), 0) + 500) // 1000
        assert (lines[m].points_issued, lines[m].points_redeemed, lines[m].points_expired,
                lines[m].points_purchased, lines[m].owed_fen, lines[m].due_fen, lines[m].net_fen) == (
            model.counts.get((m, "earn"), 0), model.counts.get((m, "redeem"), 0), model.counts.get((m, "expire"), 0),
            model.counts.get((m, "purchase"), 0), owed, due, due - owed), m
    assert settlement.statement(db, op, "2026-05").net_total_fen == 0
    assert settlement.recompute(db, w.coalition, "2026-05") == []


def _apply(model: Model, kind: str, merchant: str, amount: int, now: dt.datetime, n: int) -> str | None:
    """The model's answer: None when it should succeed (and its effect), else the refusal's code."""
    if kind == "purchase":
        if not model.prepaid[merchant]:
            return "not_prepaid"
        model.block[merchant] += amount
        model.add(merchant, "purchase", amount, model.issue[merchant])
        return None
    if kind == "earn":
        if model.prepaid[merchant]:
            if model.block[merchant] < amount:
                return "prepaid_block_empty"
            model.block[merchant] -= amount
        else:  # postpaid: billed at the price in force now
            model.milli[(merchant, "issue")] = model.milli.get((merchant, "issue"), 0) + amount * model.issue[merchant]
        model.counts[(merchant, "earn")] = model.counts.get((merchant, "earn"), 0) + amount
        model.lots.append([now + dt.timedelta(days=EXPIRY_DAYS), n, merchant, amount])
        return None
    live = sorted(lot for lot in model.lots if lot[0] > now and lot[3])
    if sum(lot[3] for lot in live) < amount:
        return "insufficient_points"
    left = amount
    for lot in live:
        step = min(lot[3], left)
        lot[3] -= step
        left -= step
    model.add(merchant, "redeem", amount, model.redeem[merchant])
    return None
