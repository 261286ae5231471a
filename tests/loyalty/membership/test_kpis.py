"""Term arithmetic, revenue recognition and the renewal rate on a generated cohort, each checked
against figures computed by hand or independently in the test."""

from __future__ import annotations

import calendar
import datetime as dt
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from lianjie.errors import LianjieError
from lianjie.loyalty.membership import kpis, lifecycle, periods, plans, refunds
from lianjie.loyalty.membership.models import MembershipPeriod, MembershipPlan
from lianjie.loyalty.membership.schemas import RefundIn
from lianjie.loyalty.membership.terms import add_months, recognised, upgrade_fee
from tests.loyalty.helpers import person
from tests.loyalty.membership.helpers import add_plan, local, make_shop

D = dt.date


@pytest.mark.parametrize(("start", "months", "anchor", "end"), [
    (D(2026, 1, 31), 1, 31, D(2026, 2, 28)),  # no 31 February: the month's last day
    (D(2026, 2, 28), 1, 31, D(2026, 3, 31)),  # back to the anchor day, not 28 March
    (D(2026, 3, 31), 1, 31, D(2026, 4, 30)),
    (D(2028, 1, 31), 1, 31, D(2028, 2, 29)),  # leap year
    (D(2028, 2, 29), 12, 29, D(2029, 2, 28)),
    (D(2026, 3, 10), 12, 15, D(2027, 3, 10)),  # a start off its anchor (a merge extension) keeps its day
    (D(2026, 11, 30), 3, 30, D(2027, 2, 28)),
    (D(2026, 5, 15), 12, 15, D(2027, 5, 15)),
])
def test_terms_end_on_the_same_day_or_the_months_last(start: dt.date, months: int, anchor: int,
                                                      end: dt.date) -> None:
    assert add_months(start, months, anchor) == end


def test_monthly_terms_do_not_drift_after_february() -> None:
    ends, day = [], D(2026, 1, 31)
    for _ in range(4):
        day = add_months(day, 1, 31)
        ends.append(day)
    assert ends == [D(2026, 2, 28), D(2026, 3, 31), D(2026, 4, 30), D(2026, 5, 31)]


def test_upgrade_fee_and_ratable_recognition_by_hand() -> None:
    assert upgrade_fee(26000, 65000, 365, 183) == 19553  # 39,000 x 183 / 365 = 19,553.42
    assert upgrade_fee(26000, 65000, 365, 365) == 39000
    assert upgrade_fee(65000, 26000, 365, 100) == 0
    start, end = D(2026, 1, 1), D(2027, 1, 1)
    months = [D(2026, m, 1) for m in range(1, 13)] + [end]
    parts = [recognised(10001, start, end, end, b) - recognised(10001, start, end, end, a)
             for a, b in zip(months, months[1:], strict=False)]
    assert sum(parts) == 10001
    assert parts[0] == 10001 * 31 // 365


def test_revenue_recognised_ratably_with_upgrade_and_refund(db: Session) -> None:
    shop = make_shop(db)
    tenant = shop["tenant"]
    add_plan(db, tenant, code="day", name="日卡", sku="MEM-DAY", fee_fen=36500, term_months=12, grace_days=0, rank=3)
    add_plan(db, tenant, code="day2", name="双日卡", sku="MEM-DAY2", fee_fen=73000, term_months=12, grace_days=0,
             rank=4)
    me = person(db, tenant, "U1")
    day, day2 = plans.get_plan(db, tenant, "day"), plans.get_plan(db, tenant, "day2")
    first = lifecycle.buy(db, tenant, me, day, D(2025, 1, 1), 36500, order_no="R-1", key="k1")  # 100 fen a day
    # 2025-03-01: 306 of 365 days left; (73,000 - 36,500) x 306 / 365 = 30,600; the rest of the old fee,
    # 36,500 - 59 x 100 = 30,600, is carried, so the new term recognises 61,200 over 306 days: 200 a day.
    upgraded = lifecycle.buy(db, tenant, me, day2, D(2025, 3, 1), 30600, order_no="R-2", key="k2")
    assert (upgraded.charged_fen, upgraded.carried_fen) == (30600, 30600)
    refunds.refund_period(db, tenant, upgraded, 30600, D(2025, 4, 1), key="rf", request={})
    months = kpis.revenue(db, tenant, D(2025, 1, 1), D(2025, 5, 1))
    # Jan 31 x 100, Feb 28 x 100, Mar 31 x 200; in April the term closes: of its 61,200 fen, 6,200 were
    # recognised and 30,600 go back, so the 24,400 the member gave up are recognised at the refund.
    assert [(m.month, m.recognised_fen) for m in months] == [
        ("2025-01", 3100), ("2025-02", 2800), ("2025-03", 6200), ("2025-04", 24400), ("2025-05", 0)]
    assert sum(m.recognised_fen for m in months) == 36500 + 30600 - 30600
    assert first.status == "upgraded"
    members = kpis.paid_members(db, tenant, D(2025, 3, 31))
    assert (members.paid_members, members.by_plan) == (1, {"day2": 1})
    assert kpis.paid_members(db, tenant, D(2025, 4, 1)).paid_members == 0


BEHAVIOURS = ["renew_early", "renew_in_grace", "renew_late", "lapse", "refund"]


def test_renewal_rate_on_a_generated_cohort_matches_a_hand_count(db: Session) -> None:
    shop = make_shop(db)
    tenant = shop["tenant"]
    gold, executive = plans.get_plan(db, tenant, "gold"), plans.get_plan(db, tenant, "exec")
    rng = random.Random(7)
    people = []
    for i in range(40):
        joined = D(2024, 12, 1) + dt.timedelta(days=rng.randrange(365))
        plan = rng.choice([gold, executive])
        people.append((person(db, tenant, f"C{i}"), joined, plan, rng.choice(BEHAVIOURS)))
    at = D(2026, 12, 1)
    expected: dict[str, list[int]] = {}
    for i, (profile, joined, plan, behaviour) in enumerate(people):
        end = joined.replace(year=joined.year + 1)  # joins fall in 2024-12 .. 2025-11: no 29 February
        lifecycle.buy(db, tenant, profile, plan, joined, plan.fee_fen, order_no=None, key=f"join-{i}")
        if behaviour == "renew_early":
            lifecycle.buy(db, tenant, profile, plan, end - dt.timedelta(days=5), plan.fee_fen, order_no=None,
                          key=f"renew-{i}")
        elif behaviour == "renew_in_grace":
            lifecycle.buy(db, tenant, profile, plan, end + dt.timedelta(days=29), plan.fee_fen, order_no=None,
                          key=f"renew-{i}")
        elif behaviour == "renew_late":  # a day after the 30 days of grace: a new join
            lifecycle.buy(db, tenant, profile, plan, end + dt.timedelta(days=30), plan.fee_fen, order_no=None,
                          key=f"renew-{i}")
        elif behaviour == "refund":
            [membership] = periods.live_memberships(db, tenant, [profile], joined)
            term = periods.latest(db, membership.id)
            refunds.refund_period(db, tenant, term, plan.fee_fen, joined + dt.timedelta(days=10), key=f"rf-{i}",
                                  request={})
        # By hand: the first term is due on `end`; it counts if due in [at - 12 months, at) and decided.
        renewed = behaviour in ("renew_early", "renew_in_grace")
        decided = renewed or at >= end + dt.timedelta(days=30)
        if behaviour != "refund" and D(2025, 12, 1) <= end < at and decided:
            for cell in ("all", f"plan:{plan.code}", f"month:{joined:%Y-%m}"):
                counts = expected.setdefault(cell, [0, 0])
                counts[0] += 1
                counts[1] += renewed
    rate = kpis.renewal_rate(db, tenant, at)
    assert (rate.window_from, rate.window_to) == (D(2025, 12, 1), at)
    assert [rate.due, rate.renewed] == expected["all"]
    assert rate.due > 20
    assert 0 < rate.renewed < rate.due
    assert rate.rate == round(expected["all"][1] / expected["all"][0], 4)
    assert {k: [v.due, v.renewed] for k, v in rate.by_plan.items()} == {
        k.split(":")[1]: v for k, v in expected.items() if k.startswith("plan:")}
    assert {k: [v.due, v.renewed] for k, v in rate.by_join_month.items()} == {
        k.split(":")[1]: v for k, v in expected.items() if k.startswith("month:")}


@pytest.mark.parametrize(("full_days", "after", "used", "expected"), [
    (None, "prorated", 300, 26000),  # always in full, as Costco does
    (30, "prorated", 29, 26000),
    (30, "prorated", 100, 26000 * 265 // 365),  # 18,876: the unused 265 days' share, rounded down
    (30, "none", 100, 0),
])
def test_refund_policy(full_days: int | None, after: str, used: int, expected: int) -> None:
    plan = MembershipPlan(refund_full_days=full_days, refund_after=after)
    start = D(2026, 1, 1)
    term = MembershipPeriod(starts_on=start, ends_on=D(2027, 1, 1), charged_fen=26000, carried_fen=0, refunded_fen=0,
                            extension_days=0)
    assert refunds.policy_amount(plan, term, start + dt.timedelta(days=used)) == expected


@given(start=st.dates(D(2000, 1, 1), D(2090, 12, 31)), months=st.integers(1, 36), fee=st.integers(0, 10**7))
def test_terms_and_recognition_properties(start: dt.date, months: int, fee: int) -> None:
    """A term is exactly ``months`` calendar months, ends on its anchor day where the month has it, and
    the revenue of its months adds up to the fee, to the fen."""
    end = add_months(start, months, start.day)
    assert (end.year * 12 + end.month) - (start.year * 12 + start.month) == months
    assert end.day == min(start.day, calendar.monthrange(end.year, end.month)[1])
    edges = [add_months(start.replace(day=1), i) for i in range(months + 2)]
    parts = [recognised(fee, start, end, end, b) - recognised(fee, start, end, end, a)
             for a, b in zip(edges, edges[1:], strict=False)]
    assert sum(parts) == fee
    assert all(p >= 0 for p in parts)


@pytest.mark.parametrize(("full_days", "after", "back", "april"), [
    # Refunded on 2025-04-01, 31 days into the upgraded term of 306 days (61,200 fen: 200 a day, of which
    # 30,600 the upgrade charge and 30,600 the first term's unused rest, carried); 6,200 recognised.
    (None, "prorated", 61200, -6200),  # whole fee back, always: the 6,200 recognised are reversed
    (60, "none", 61200, -6200),  # within 60 days of the term's start: the whole fee
    (14, "prorated", 55000, 0),  # the unused 275 of 306 days: 61,200 x 275 // 306 = 55,000
    (14, "none", 0, 55000),  # nothing back: the unrecognised 55,000 are recognised at the refund
])
def test_refunding_an_upgraded_term_gives_back_the_carried_fee_and_the_charge(
        db: Session, full_days: int | None, after: str, back: int, april: int) -> None:
    shop = make_shop(db)
    tenant = shop["tenant"]
    add_plan(db, tenant, code="day", name="日卡", sku="MEM-DAY", fee_fen=36500, term_months=12, grace_days=0, rank=3)
    add_plan(db, tenant, code="day2", name="双日卡", sku="MEM-DAY2", fee_fen=73000, term_months=12, grace_days=0,
             rank=4, refund_full_days=full_days, refund_after=after)
    me = person(db, tenant, "U1")
    first = lifecycle.buy(db, tenant, me, plans.get_plan(db, tenant, "day"), D(2025, 1, 1), 36500, order_no="R-1",
                          key="k1")
    upgraded = lifecycle.buy(db, tenant, me, plans.get_plan(db, tenant, "day2"), D(2025, 3, 1), 30600,
                             order_no="R-2", key="k2")
    assert (upgraded.charged_fen, upgraded.carried_fen) == (30600, 30600)
    done = refunds.refund_manually(db, tenant, first.membership_id, RefundIn(
        idempotency_key="rf-1", reason="moving abroad", operator="desk-1"), local("2025-04-01"))
    assert done.action.outcome["refunded_fen"] == back
    db.refresh(upgraded)
    assert (upgraded.status, upgraded.refunded_fen) == ("refunded", back)
    months = kpis.revenue(db, tenant, D(2025, 1, 1), D(2025, 5, 1))
    assert [(m.month, m.recognised_fen) for m in months] == [
        ("2025-01", 3100), ("2025-02", 2800), ("2025-03", 6200), ("2025-04", april), ("2025-05", 0)]
    assert sum(m.recognised_fen for m in months) == 36500 + 30600 - back  # what was paid, net of refunds
    with pytest.raises(LianjieError) as again:  # nothing live is left to refund
        refunds.refund_manually(db, tenant, first.membership_id, RefundIn(
            idempotency_key="rf-2", reason="again", operator="desk-1"), local("2025-04-02"))
    assert again.value.code == "nothing_to_refund"
