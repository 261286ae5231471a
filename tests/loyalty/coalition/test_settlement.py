"""The two-merchant settlement, computed by hand: earn at A, redeem at B, expire some, close March."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lianjie.errors import ValidationFailed
from lianjie.loyalty.coalition import cards, points, settlement
from lianjie.loyalty.coalition.models import CoalitionPeriod, CoalitionStatementLine
from tests.loyalty.coalition.helpers import check_invariants, link, local, make_world, prepaid_balance
from tests.loyalty.helpers import person


def test_two_merchants_hand_computed_statement_nets_to_zero_and_closing_twice_changes_nothing(db: Session) -> None:
    # A: postpaid, issue 10.5 fen/point, redemption 8 fen. B: prepaid, issue 12 fen, redemption 9.25 fen.
    # Points expire 30 days after earning.
    w = make_world(db)
    a, b, op = w.acc(db, w.a), w.acc(db, w.b), w.acc(db, w.operator)
    card = link(db, a, person(db, w.a.id, "wang@A"))
    assert link(db, b, person(db, w.b.id, "wang@B"), card_no=card) == card  # the same card at B

    points.earn(db, a, card, "a-feb", 1000, now=local(2026, 2, 20, 10))  # February: expires 22 March 10:00
    points.purchase(db, b, "b-block-1", 500, now=local(2026, 3, 1, 9))  # B buys a block: 500 x 12 = 6,000 fen
    points.earn(db, a, card, "a-mar", 333, now=local(2026, 3, 5, 12))  # 333 x 10.5 = 3,496.5 -> 3,497 fen
    points.redeem(db, b, card, "b-till-1", 700, now=local(2026, 3, 10, 15))  # from the February lot first
    points.earn(db, b, card, "b-mar", 200, now=local(2026, 3, 12, 11))  # from B's block: nothing billed
    points.redeem(db, a, card, "a-till-1", 100, now=local(2026, 3, 15, 16))  # the February lot again (soonest)
    # The February lot's last 1000 - 700 - 100 = 200 points lapse on 22 March: breakage issued by A,
    # kept by the operator.

    preview = settlement.statement(db, op, "2026-03")
    assert preview.status == "open"
    assert [line.points_expired for line in preview.lines] == [0, 0, 0]  # the job has not run yet

    period, closed = settlement.close(db, w.coalition, "2026-03", closed_by="test", now=local(2026, 4, 1, 0, 5))
    assert closed
    shown = settlement.statement(db, op, "2026-03")
    assert shown.status == "closed"
    got = {(line.party, line.merchant): line.model_dump(exclude={"party", "merchant"}) for line in shown.lines}
    zero = dict.fromkeys(["points_issued", "points_issued_postpaid", "points_redeemed", "points_expired",
                          "points_purchased", "issue_owed_fen", "purchase_owed_fen", "redemption_due_fen",
                          "owed_fen", "due_fen", "net_fen"], 0)
    assert got == {
        # A: owes 3,497 for 333 postpaid points; due 100 x 8 = 800 for the points taken at its till.
        ("merchant", "huamei"): zero | {"points_issued": 333, "points_issued_postpaid": 333, "points_redeemed": 100,
                                        "points_expired": 200, "issue_owed_fen": 3497, "redemption_due_fen": 800,
                                        "owed_fen": 3497, "due_fen": 800, "net_fen": -2697},
        # B: owes 6,000 for its block; due 700 x 9.25 = 6,475.
        ("merchant", "yuedong"): zero | {"points_issued": 200, "points_redeemed": 700, "points_purchased": 500,
                                         "purchase_owed_fen": 6000, "redemption_due_fen": 6475,
                                         "owed_fen": 6000, "due_fen": 6475, "net_fen": 475},
        # The operator receives 3,497 + 6,000, pays 800 + 6,475 and keeps the 200 points of breakage.
        ("operator", "ccc"): zero | {"points_expired": 200, "due_fen": 9497, "owed_fen": 7275, "net_fen": 2222},
    }
    assert shown.net_total_fen == 0 == -2697 + 475 + 2222
    assert settlement.recompute(db, w.coalition, "2026-03") == []

    # Closing again returns the stored statement and writes nothing.
    rows = db.scalar(select(func.count()).select_from(CoalitionStatementLine))
    again, closed_again = settlement.close(db, w.coalition, "2026-03", closed_by="someone else",
                                           now=local(2026, 4, 2))
    assert (again.id, again.closed_at, again.closed_by, closed_again) == (period.id, period.closed_at, "test", False)
    assert db.scalar(select(func.count()).select_from(CoalitionStatementLine)) == rows
    assert db.scalar(select(func.count()).select_from(CoalitionPeriod)) == 1
    assert settlement.statement(db, op, "2026-03") == shown

    # A write dated inside the closed month (a till's clock, a late job) books on April instead.
    late = points.earn(db, a, card, "a-late", 40, now=local(2026, 3, 31, 23, 59))
    assert late.booked_at == local(2026, 4, 1)
    assert settlement.recompute(db, w.coalition, "2026-03") == []
    april = settlement.statement(db, op, "2026-04")
    assert (april.status, april.lines[0].points_issued, april.lines[0].issue_owed_fen) == ("open", 40, 420)
    assert settlement.statement(db, op, "2026-03") == shown

    # A member sees only its own line; balances and blocks add up.
    assert [(x.merchant, x.net_fen) for x in settlement.statement(db, b, "2026-03").lines] == [("yuedong", 475)]
    assert prepaid_balance(db, w.coalition.id, w.b.id) == 300
    assert cards.describe(db, a, card, now=local(2026, 4, 1, 1)).balance == 333 + 200 + 40
    check_invariants(db, w.coalition.id)


def test_rounding_is_once_per_line_half_up(db: Session) -> None:
    """Three awards of 1 point at 10.5 fen are 31.5 fen on one line, billed 32 (not 3 x 11 = 33 or 3 x 10)."""
    w = make_world(db, b_terms=("0.333", "0.001", "postpaid"))
    a, b, op = w.acc(db, w.a), w.acc(db, w.b), w.acc(db, w.operator)
    card = link(db, a, person(db, w.a.id, "li@A"))
    link(db, b, person(db, w.b.id, "li@B"), card_no=card)
    for i in range(3):
        points.earn(db, a, card, f"a-{i}", 1, now=local(2026, 5, 3, 10))
    points.earn(db, b, card, "b-1", 1, now=local(2026, 5, 3, 10))  # 0.333 fen: 0
    points.earn(db, b, card, "b-2", 2, now=local(2026, 5, 3, 10))  # with the above 0.999 fen: 1
    points.redeem(db, b, card, "b-r", 4, now=local(2026, 5, 4, 10))  # 4 x 0.001 = 0.004 fen: 0
    lines = {x.merchant: x for x in settlement.statement(db, op, "2026-05").lines}
    assert (lines["huamei"].issue_owed_fen, lines["yuedong"].issue_owed_fen, lines["yuedong"].due_fen) == (32, 1, 0)
    assert lines["ccc"].net_fen == 33


def test_a_period_that_is_not_over_cannot_be_closed(db: Session) -> None:
    w = make_world(db)
    with pytest.raises(ValidationFailed) as refused:
        settlement.close(db, w.coalition, "2026-03", closed_by="t", now=local(2026, 3, 31, 23))
    assert refused.value.code == "period_not_over"
    assert db.scalar(select(func.count()).select_from(CoalitionPeriod)) == 0
