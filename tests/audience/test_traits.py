"""Traits computed in the warehouse: RFM scores and groups, lifecycle stages with thresholds set and
derived, and CLV, on hand-written orders whose answers are worked out by hand below (RFM, stages)
or independently with clv.py (CLV)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from lianjie.audience import clv, traits
from lianjie.audience.labels import GROUP_OF
from lianjie.audience.settings import AudienceSettings, Lifecycle
from lianjie.warehouse.tables import CUSTOMER_TRAITS
from tests.warehouse_backends import fill

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 14:00 on 1 July in Shanghai, 06:00 UTC: "today" is 1 July locally and in UTC alike.
AS_OF = dt.datetime(2026, 7, 1, 14, 0, tzinfo=SHANGHAI).astimezone(dt.UTC)


def local(days_ago: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    """A time ``days_ago`` local days before 1 July 2026 in Shanghai, in UTC."""
    day = dt.date(2026, 7, 1) - dt.timedelta(days=days_ago)
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI).astimezone(dt.UTC)


class Orders:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, profile: int | None, at: dt.datetime, paid: int, *, refunded: int = 0, status: str = "completed",
            tenant: int = 1) -> None:
        self.rows.append({"id": len(self.rows) + 1, "tenant_id": tenant, "order_no": f"SO-{len(self.rows) + 1}",
                          "profile_id": profile, "paid_fen": paid, "refunded_fen": refunded, "status": status,
                          "ordered_at": at, "updated_at": at})


def _who(customer: int, profile: int | None = None, *, erased: bool = False, tenant: int = 1) -> dict[str, Any]:
    return {"tenant_id": tenant, "profile_id": profile or customer, "customer_id": customer, "erased": erased}


# customer: (days ago of each purchase, net fen each); the notes say what each one tests.
PURCHASES: dict[int, list[tuple[int, int]]] = {
    1: [(30, 10_000), (20, 10_000), (10, 10_000), (0, 10_000)],  # last one at 00:30 local, still 30 Jun in UTC
    2: [(100, 20_000), (5, 20_000)],
    3: [(15, 50_000)],
    4: [(200, 3_000), (70, 3_000)],
    5: [(130, 8_000)],
    6: [(200, 5_000), (3, 5_000)],  # back after 197 days
    7: [(55, 1_000), (50, 1_000), (45, 1_000)],
    8: [(400, 99_999), (90, 3_500)],  # the first is outside the 365-day window
    9: [(25, 4_000)],  # plus a fully refunded order 8 days ago, below
    10: [(60, 2_000), (12, 2_000)],  # the first by profile 11, merged into 10
}


@pytest.fixture
def rfm_world(warehouse: Any) -> Any:
    orders = Orders()
    for customer, bought in PURCHASES.items():
        for days_ago, fen in bought:
            if customer == 1 and days_ago == 0:
                orders.add(1, local(0, 0, 30), fen)
            elif customer == 9:
                orders.add(9, local(days_ago), fen + 2_000, refunded=2_000, status="partially_refunded")
            elif customer == 10 and days_ago == 60:
                orders.add(11, local(days_ago), fen)
            else:
                orders.add(customer, local(days_ago), fen)
    orders.add(9, local(8), 10_000, refunded=10_000, status="refunded")  # no purchase
    orders.add(1, AS_OF + dt.timedelta(hours=1), 77_777)  # after the as-of time
    orders.add(None, local(1), 12_345)  # a guest: nobody's
    orders.add(12, local(2), 500_000)  # an erased customer: no traits
    orders.add(21, local(1), 900_000, tenant=2)  # another merchant's customer
    idmap = [_who(c) for c in range(1, 11)] + [_who(10, 11), _who(12, erased=True), _who(13), _who(21, tenant=2)]
    fill(warehouse, {"orders": orders.rows, "identity_map": idmap})
    return warehouse


# (recency, frequency, monetary), (R, F, M scores), group, stage with at_risk 60 / lapsed 120 days.
# Scores: 1 + floor(5 x buyers strictly worse / 10). Means: R 3.0, F 2.6, M 2.9; high = score >= mean.
EXPECTED: dict[int, tuple[tuple[int, int, int], tuple[int, int, int], str, str]] = {
    1: ((0, 4, 40_000), (5, 5, 4), "important_value", "active"),
    2: ((5, 2, 40_000), (4, 3, 4), "important_value", "active"),
    3: ((15, 1, 50_000), (3, 1, 5), "important_development", "new"),
    4: ((70, 2, 6_000), (2, 3, 3), "important_maintain", "at_risk"),
    5: ((130, 1, 8_000), (1, 1, 3), "important_winback", "lapsed"),
    6: ((3, 2, 10_000), (5, 3, 4), "important_value", "reactivated"),
    7: ((45, 3, 3_000), (2, 5, 1), "general_maintain", "active"),
    8: ((90, 1, 3_500), (1, 1, 1), "general_winback", "at_risk"),
    9: ((25, 1, 4_000), (3, 1, 2), "general_development", "new"),
    10: ((12, 2, 4_000), (4, 3, 2), "general_value", "active"),
}


def _by_customer(run: traits.MerchantTraits) -> dict[int, dict[str, Any]]:
    return {row["customer_id"]: row for row in run.rows.to_pylist()}


def test_rfm_scores_groups_and_stages_with_set_thresholds(rfm_world: Any) -> None:
    fixed = AudienceSettings(lifecycle=Lifecycle(at_risk_days=60, lapsed_days=120))
    run = traits.compute_merchant(rfm_world, 1, "Asia/Shanghai", fixed, AS_OF)
    rows = _by_customer(run)
    assert set(rows) == {*range(1, 11), 13}  # not 11 (merged into 10), 12 (erased), 21 (another merchant)
    for customer, (values, scores, group, stage) in EXPECTED.items():
        row = rows[customer]
        assert (row["recency_days"], row["frequency"], row["monetary_fen"]) == values, customer
        assert (row["r_score"], row["f_score"], row["m_score"]) == scores, customer
        assert (row["rfm_group"], row["lifecycle_stage"]) == (group, stage), customer
        assert row["computed_at"] == AS_OF
    assert {g for _, _, g, _ in EXPECTED.values()} == set(GROUP_OF.values())  # all eight met
    prospect = rows[13]
    assert prospect["lifecycle_stage"] == "prospect"
    assert all(prospect[k] is None for k in ("recency_days", "frequency", "r_score", "rfm_group", "clv_p_alive"))
    assert rows[1]["first_order_at"] == local(30)
    assert rows[1]["last_order_at"] == local(0, 0, 30)
    assert rows[10]["first_order_at"] == local(60)  # the merged profile's order
    # 7 buyers bought more than once, fewer than MIN_REPEAT_BUYERS: no CLV for anybody.
    assert run.repeat_buyers == 7 < traits.MIN_REPEAT_BUYERS
    assert run.clv is None
    assert all(r["clv_expected_value_fen"] is None for r in rows.values())
    assert run.thresholds == traits.Thresholds(60, 120, "settings")
    assert run.counts == {"active": 4, "new": 2, "at_risk": 2, "lapsed": 1, "reactivated": 1, "prospect": 1}

    # Derived from the gaps between purchase days: 5 5 10 10 10 48 95 130 197 310 (ten gaps): the
    # median is 10, so at risk after 10 x 2 = 20 days; the 90th percentile (9th of 10) is 197.
    derived = traits.compute_merchant(rfm_world, 1, "Asia/Shanghai", AudienceSettings(), AS_OF)
    assert derived.thresholds == traits.Thresholds(20, 197, "derived", 10)
    stages = {c: r["lifecycle_stage"] for c, r in _by_customer(derived).items()}
    assert stages == {1: "active", 2: "active", 3: "new", 4: "at_risk", 5: "at_risk", 6: "active",
                      7: "at_risk", 8: "at_risk", 9: "new", 10: "active", 13: "prospect"}

    # Written to the warehouse per merchant: another merchant's rows stay.
    other = traits.compute_merchant(rfm_world, 2, "Asia/Shanghai", AudienceSettings(), AS_OF)
    traits.write(rfm_world, [other, run], everyone=True)
    traits.write(rfm_world, [derived], everyone=False)
    table = rfm_world.table(CUSTOMER_TRAITS).to_pyarrow().to_pylist()
    assert sorted((r["tenant_id"], r["customer_id"], r["lifecycle_stage"]) for r in table if r["customer_id"] in
                  (5, 21)) == [(1, 5, "at_risk"), (2, 21, "new")]
    assert len(table) == 12


def test_a_lapsed_customer_who_buys_again_is_reactivated_for_a_while(warehouse: Any) -> None:
    orders = Orders()
    orders.add(1, local(300), 1_000)
    orders.add(1, local(31), 1_000)  # back after 269 days, 31 days ago
    orders.add(2, local(300), 1_000)
    orders.add(2, local(30), 1_000)  # back after 270 days, 30 days ago
    orders.add(3, local(300), 1_000)
    orders.add(3, local(150), 1_000)  # a gap of exactly 150 days is not longer than lapsed_days
    orders.add(3, local(1), 1_000)
    fill(warehouse, {"orders": orders.rows, "identity_map": [_who(c) for c in (1, 2, 3)]})
    settings = AudienceSettings(lifecycle=Lifecycle(at_risk_days=60, lapsed_days=150, reactivated_days=30))
    rows = _by_customer(traits.compute_merchant(warehouse, 1, "Asia/Shanghai", settings, AS_OF))
    assert {c: r["lifecycle_stage"] for c, r in rows.items()} == {1: "active", 2: "reactivated", 3: "active"}


def _simulated_days(rng: np.random.Generator, customers: int) -> dict[int, list[int]]:
    """Purchase days (days ago) of customers who follow the BG/NBD story (a gamma-distributed
    weekly rate, a beta-distributed chance of dropping out after each purchase), so the models
    are well determined; first purchases spread over the last year."""
    out = {}
    for customer in range(1, customers + 1):
        rate, drop = rng.gamma(0.9, 1 / 3.0), rng.beta(0.8, 3.0)
        first = int(rng.integers(0, 365))
        days, t = [first], float(first)
        while rng.random() >= drop:
            t -= rng.exponential(7 / rate)
            if t < 0:
                break
            days.append(int(t))
        out[customer] = days
    return out


def test_clv_matches_the_models_fitted_directly(warehouse: Any) -> None:
    """(x, t_x, T) and repeat spend are summarised here by clv.summarise from the same purchases,
    and the models fitted on that; the job's per-customer figures must be the models' own."""
    rng = np.random.default_rng(5)
    orders, purchases = Orders(), []
    customers = _simulated_days(rng, 150)
    for customer, days in customers.items():
        # Customers differ in how much they spend (Gamma-Gamma's own story). With one spend
        # distribution for everyone the model's q is not determined (the fit runs off along a flat
        # ridge), and where an optimiser stops on it depends on the order the customers come in.
        scale = rng.gamma(3.0, 800)
        for days_ago in days:
            fen = int(rng.gamma(4, scale)) + 100
            orders.add(customer, local(days_ago, 0, 20), fen)  # just after midnight: the day before in UTC
            purchases.append(clv.Purchase(str(customer), dt.date(2026, 7, 1) - dt.timedelta(days=days_ago), fen / 100))
    fill(warehouse, {"orders": orders.rows, "identity_map": [_who(c) for c in customers]})
    horizon = 180
    run = traits.compute_merchant(warehouse, 1, "Asia/Shanghai", AudienceSettings(clv_horizon_days=horizon), AS_OF)

    summaries = clv.summarise(purchases, dt.date(2026, 7, 1))
    bgnbd, gamma = clv.fit_bgnbd(summaries), clv.fit_gamma_gamma(summaries)
    assert run.clv is not None
    assert run.repeat_buyers == sum(1 for s in summaries if s.x) >= traits.MIN_REPEAT_BUYERS
    for name in ("r", "alpha", "a", "b"):
        assert run.clv["bgnbd"][name] == pytest.approx(getattr(bgnbd, name), rel=1e-3)
    x, t_x, T = (np.array([getattr(s, k) for s in summaries]) for k in ("x", "t_x", "T"))
    alive = bgnbd.p_alive(x, t_x, T)
    expected = bgnbd.expected_purchases(horizon / 7, x, t_x, T)
    value = expected * gamma.expected_spend(x, np.array([s.mean_repeat_spend for s in summaries])) * 100
    rows = _by_customer(run)
    for i, s in enumerate(summaries):
        row = rows[int(s.customer)]
        assert row["clv_p_alive"] == pytest.approx(alive[i], rel=1e-3, abs=1e-6), s.customer
        assert row["clv_expected_purchases"] == pytest.approx(expected[i], rel=1e-3), s.customer
        assert row["clv_expected_value_fen"] == pytest.approx(value[i], rel=1e-3, abs=1), s.customer


def test_figures_the_models_overflow_on_are_null_not_nan() -> None:
    """A NaN or infinity would be stored, then break the JSON of /traits; a non-buyer has no figure."""
    values = np.array([1.5, np.nan, np.inf, 2.0])
    assert traits._finite(values, np.array([True, True, True, False])).to_pylist() == [1.5, None, None, None]
