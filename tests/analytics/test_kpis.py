"""KPI queries on every warehouse backend, against figures counted by hand from tests/analytics/scenario.py.

The scenario is filled once per backend (module scope) and each test runs one or two queries, so the
whole file stays at about a dozen warehouse queries per backend.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from lianjie.analytics import customers, periods, sales
from lianjie.analytics.periods import Range
from tests import warehouse_backends
from tests.analytics.scenario import ROWS

OCTOBER = Range.of(dt.date(2026, 10, 1), dt.date(2026, 10, 31), "Asia/Shanghai")


@pytest.fixture(scope="module", params=warehouse_backends.BACKENDS)
def con(request: pytest.FixtureRequest) -> Iterator[Any]:
    with warehouse_backends.open_backend(request.param) as connection:
        warehouse_backends.fill(connection, ROWS)
        yield connection


def test_the_range_is_local_midnight_to_local_midnight_in_utc() -> None:
    assert OCTOBER.start == dt.datetime(2026, 9, 30, 16, tzinfo=dt.UTC)
    assert OCTOBER.end == dt.datetime(2026, 10, 31, 16, tzinfo=dt.UTC)
    previous = OCTOBER.previous()
    assert (previous.first, previous.last, previous.days) == (dt.date(2026, 8, 31), dt.date(2026, 9, 30), 31)


def test_overview_counts_by_hand(con: Any) -> None:
    current, previous = sales.overview(con, 1, OCTOBER)
    # O1 10000, O2 5000 (2000 back), O3 3000 (all back), O5 guest 2500, O7 1001, O10 1999; O4 and O6 are out.
    assert (current.orders, current.refunded_orders, current.guest_orders) == (6, 1, 1)
    assert (current.gross_fen, current.refunded_fen, current.net_fen) == (23500, 5000, 18500)
    assert current.aov_fen == 3917  # 23500 / 6 = 3916.67
    # 101 (O1 and O2 through merged profile 102: one customer), 103, 104, 105; the guest is not a buyer.
    assert (current.buyers, current.repeat_buyers, current.repurchase_rate) == (4, 1, 0.25)
    # Members by 31 Oct: 101 (since 10 Sep, on profile 102) and 103 (15 Oct); 105 joins in November.
    assert (current.member_buyers, current.member_net_fen) == (2, 10000 + 3000 + 0)
    assert current.member_share == round(13000 / 18500, 4)
    assert (current.members, current.new_members) == (3, 1)  # 101, 106, 103; 103 is new

    # 31 Aug to 30 Sep: O6 (a second before the range) and O8; 106 is a member by then, 104 is not.
    assert (previous.orders, previous.gross_fen, previous.net_fen, previous.aov_fen) == (2, 4600, 4600, 2300)
    assert (previous.buyers, previous.repeat_buyers, previous.repurchase_rate) == (2, 0, 0.0)
    assert (previous.member_buyers, previous.member_net_fen, previous.member_share) == (1, 600, round(600 / 4600, 4))
    assert (previous.members, previous.new_members, previous.guest_orders) == (2, 2, 0)

    change = sales.change(current, previous)
    assert change["orders"] == 2.0
    assert change["gross_fen"] == round((23500 - 4600) / 4600, 4)
    assert change["refunded_fen"] is None  # nothing refunded before: no ratio
    assert change["new_members"] == -0.5


def test_an_empty_range_has_zeros_and_no_ratios(con: Any) -> None:
    current, previous = sales.overview(con, 1, Range.of(dt.date(2020, 1, 1), dt.date(2020, 1, 1), "Asia/Shanghai"))
    assert (current.orders, current.gross_fen, current.buyers, current.members) == (0, 0, 0, 0)
    assert (current.aov_fen, current.repurchase_rate, current.member_share) == (None, None, None)
    assert previous == current


def _rows(con: Any, by: sales.Dimension) -> list[tuple[Any, ...]]:
    return [(r.key, r.code, r.name, r.orders, r.gross_fen, r.refunded_fen, r.net_fen, r.buyers, r.member_net_fen)
            for r in sales.breakdown(con, 1, OCTOBER, by)]


def test_breakdown_per_store(con: Any) -> None:
    rows = sales.breakdown(con, 1, OCTOBER, "store")
    assert _rows(con, "store") == [
        (10, "SH001", "上海店", 2, 13000, 3000, 10000, 2, 10000),     # O1, O3
        (11, "BJ001", "北京店", 3, 9499, 2000, 7499, 2, 3000),        # O2, O5 (guest), O10
        (None, None, None, 1, 1001, 0, 1001, 1, 0)]                   # O7
    assert [r.share_of_net for r in rows] == [round(10000 / 18500, 4), round(7499 / 18500, 4), round(1001 / 18500, 4)]
    assert [r.aov_fen for r in rows] == [6500, 3166, 1001]  # 9499 / 3 = 3166.33


def test_breakdown_per_guide(con: Any) -> None:
    assert _rows(con, "guide") == [
        (20, "G001", "王芳", 1, 10000, 0, 10000, 1, 10000),            # O1
        (21, "G002", "李娜", 2, 6999, 2000, 4999, 2, 3000),            # O2, O10
        (None, None, None, 3, 6501, 3000, 3501, 2, 0)]                # O3, O5 (guest), O7


def test_breakdown_per_channel(con: Any) -> None:
    assert _rows(con, "channel") == [
        ("offline", None, None, 3, 17500, 2000, 15500, 1, 10000 + 3000),  # O1, O2 (101), O5
        ("wecom", None, None, 1, 1999, 0, 1999, 1, 0),
        ("online", None, None, 1, 1001, 0, 1001, 1, 0),
        ("miniprogram", None, None, 1, 3000, 3000, 0, 1, 0)]


def test_trend_per_local_day_week_and_month(con: Any) -> None:
    days = {p.start: (p.orders, p.net_fen, p.buyers) for p in sales.trend(con, 1, OCTOBER, "day")}
    assert len(days) == 31
    # O1 is 30 Sep in UTC and 1 Oct locally; O3 is 31 Oct locally; the guest's day has no buyer.
    assert {d: v for d, v in days.items() if v != (0, 0, 0)} == {
        dt.date(2026, 10, 1): (1, 10000, 1), dt.date(2026, 10, 10): (1, 1001, 1),
        dt.date(2026, 10, 15): (1, 3000, 1), dt.date(2026, 10, 20): (1, 2500, 0),
        dt.date(2026, 10, 25): (1, 1999, 1), dt.date(2026, 10, 31): (1, 0, 1)}
    weeks = [(p.start, p.orders, p.gross_fen) for p in sales.trend(con, 1, OCTOBER, "week")]
    assert weeks == [(dt.date(2026, 9, 28), 1, 10000), (dt.date(2026, 10, 5), 1, 1001),
                     (dt.date(2026, 10, 12), 1, 5000), (dt.date(2026, 10, 19), 2, 4499),
                     (dt.date(2026, 10, 26), 1, 3000)]
    months = sales.trend(con, 1, OCTOBER, "month")
    assert [(p.start, p.orders, p.net_fen, p.buyers) for p in months] == [(dt.date(2026, 10, 1), 6, 18500, 4)]


WINTER = Range.of(dt.date(2025, 12, 1), dt.date(2026, 4, 30), "Asia/Shanghai")  # merchant 3's five months


def test_trend_is_counted_in_stretches_of_whole_buckets() -> None:
    """A long range is counted a stretch at a time (sales.STRETCH_DAYS): the stretches follow each
    other, cover the range and never cut a bucket, so no buyer is counted in two of them."""
    grains: tuple[periods.Grain, ...] = ("day", "week", "month")
    for grain in grains:
        stretches = sales._stretches(WINTER, grain)
        assert len(stretches) > 1, grain
        assert stretches[0][0] == WINTER.first
        assert stretches[-1][1] == WINTER.last
        starts = set(periods.bucket_starts(WINTER, grain)) | {WINTER.first}
        for (_, last), (first, _) in zip(stretches, stretches[1:], strict=False):
            assert first == last + dt.timedelta(days=1), (grain, first)
            assert first in starts, (grain, first)
    assert sales._stretches(OCTOBER, "day") == [(OCTOBER.first, OCTOBER.last)]


def test_trend_over_several_stretches_counts_each_bucket_once(con: Any) -> None:
    days = {p.start: (p.orders, p.buyers) for p in sales.trend(con, 3, WINTER, "day") if p.orders}
    # 303 ordered twice on 31 January and the guest on 10 January: two orders, one buyer each day;
    # 31 January and 2 April begin stretches.
    assert days == {dt.date(2025, 12, 20): (1, 1), dt.date(2026, 1, 5): (1, 1), dt.date(2026, 1, 10): (2, 1),
                    dt.date(2026, 1, 20): (1, 1), dt.date(2026, 1, 31): (2, 1), dt.date(2026, 2, 1): (1, 1),
                    dt.date(2026, 2, 10): (1, 1), dt.date(2026, 2, 11): (1, 1), dt.date(2026, 2, 14): (1, 1),
                    dt.date(2026, 3, 1): (1, 1), dt.date(2026, 3, 3): (1, 1), dt.date(2026, 3, 8): (1, 1),
                    dt.date(2026, 3, 15): (1, 1), dt.date(2026, 4, 1): (1, 1), dt.date(2026, 4, 2): (1, 1)}
    months = [(p.start, p.orders, p.buyers) for p in sales.trend(con, 3, WINTER, "month")]
    # January: 301, 302, 303 (twice), 331 and a guest; February: 311 (locally), 301, 302 (its merged 306), 312.
    assert months == [(dt.date(2025, 12, 1), 1, 1), (dt.date(2026, 1, 1), 6, 4), (dt.date(2026, 2, 1), 4, 4),
                      (dt.date(2026, 3, 1), 4, 4), (dt.date(2026, 4, 1), 2, 2)]


def test_trend_follows_daylight_saving(con: Any) -> None:
    """Both of merchant 4's orders are on 1 November in Chicago: one under CDT (-5), one under CST (-6)."""
    rng = Range.of(dt.date(2026, 10, 31), dt.date(2026, 11, 2), "America/Chicago")
    points = [(p.start, p.orders, p.gross_fen) for p in sales.trend(con, 4, rng, "day")]
    assert points == [(dt.date(2026, 10, 31), 0, 0), (dt.date(2026, 11, 1), 2, 300), (dt.date(2026, 11, 2), 0, 0)]


def test_offsets_pin_the_change_to_the_second() -> None:
    rng = Range.of(dt.date(2026, 10, 1), dt.date(2026, 11, 30), "America/Chicago")
    assert periods.offsets(rng.zone, rng.start, rng.end) == [
        (rng.start, -5 * 3600), (dt.datetime(2026, 11, 1, 7, tzinfo=dt.UTC), -6 * 3600)]
    assert periods.offsets("Asia/Shanghai", OCTOBER.start, OCTOBER.end) == [(OCTOBER.start, 8 * 3600)]


def test_cohort_matrix_of_three_cohorts(con: Any) -> None:
    rng = periods.parse_months("2026-01", "2026-03", "Asia/Shanghai")
    rows = [(r.cohort, r.customers, r.retained, r.rates) for r in customers.cohorts(con, 3, rng)]
    assert rows == [
        # 301, 302 (its merged profile 306 bought in February), 303; 331 first bought in December: no cohort.
        ("2026-01", 3, [3, 2, 2], [1.0, round(2 / 3, 4), round(2 / 3, 4)]),
        # 311 is a February customer locally; its next order is April locally (March in UTC).
        ("2026-02", 2, [2, 1], [1.0, 0.5]),
        ("2026-03", 1, [1], [1.0])]


def test_cohort_matrix_of_the_widest_range(con: Any) -> None:
    """36 months (periods.MAX_MONTHS), each a bit of the integer a customer's active months are kept in."""
    rng = periods.parse_months("2023-04", "2026-03", "Asia/Shanghai")
    rows = {r.cohort: (r.customers, r.retained) for r in customers.cohorts(con, 3, rng)}
    assert len(rows) == 36
    assert rows["2023-04"] == (0, [0] * 36)
    assert rows["2025-12"] == (1, [1, 1, 0, 0])  # 331, now in the range, came back in January
    assert rows["2026-01"] == (3, [3, 2, 2])
    assert rows["2026-02"] == (2, [2, 1])
    assert rows["2026-03"] == (1, [1])


def test_rfm_distribution(con: Any) -> None:
    result = customers.rfm(con, 1)
    assert result.customers == 3
    assert result.computed_at == dt.datetime(2026, 10, 31, 19, tzinfo=dt.UTC)
    assert [(g.rfm_group, g.customers, g.share, g.monetary_fen, g.avg_recency_days, g.avg_frequency)
            for g in result.groups] == [("important_value", 2, round(2 / 3, 4), 31000, 15.0, 2.5),
                                        ("general_retain", 1, round(1 / 3, 4), 5001, 300.0, 2.0)]
