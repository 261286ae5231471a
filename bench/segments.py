"""Benchmark: segment preview counts through the rule compiler (parse, compile to Ibis, run) next to
hand-written DuckDB SQL for the same rules, in the same run, on the large demo world's warehouse.

The warehouse comes from bench/world_warehouse.py (1M customers, ~10M orders). Its
``customer_traits`` is left to the traits job, so this bench derives a simple RFM table from the
orders first (quintile scores, a group and a lifecycle stage), read by both sides. Each rule runs
``--repeat`` times per side, the two sides alternating, and both must give the same count.

    python bench/segments.py [--warehouse var/bench/large-seed42.duckdb] [--repeat 7]
        [--world var/bench/large-seed42]   # builds the warehouse if it is missing
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import ibis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import world_warehouse  # noqa: E402
from lianjie.audience.segments import compiler, rules, service  # noqa: E402
from lianjie.warehouse.tables import CUSTOMER_TRAITS, LAYOUTS  # noqa: E402

TENANT = 1  # yunjin, the department store
ZONE = ZoneInfo("Asia/Shanghai")
AS_OF = dt.datetime(2026, 11, 1, tzinfo=ZONE).astimezone(dt.UTC)  # the day after the world's last day
TRAITS = "bench_customer_traits"


def _start(days: int) -> str:
    """Local midnight ``days - 1`` days before the as-of day, as a UTC literal ("the last D days")."""
    day = dt.date(2026, 11, 1) - dt.timedelta(days=days - 1)
    return f"TIMESTAMPTZ '{dt.datetime.combine(day, dt.time(), ZONE).astimezone(dt.UTC).isoformat()}'"


ASOF = f"TIMESTAMPTZ '{AS_OF.isoformat()}'"
U = (f"WITH m AS (SELECT profile_id, customer_id FROM identity_map WHERE tenant_id = {TENANT}), "
     f"u AS (SELECT customer_id FROM identity_map WHERE tenant_id = {TENANT} AND profile_id = customer_id "
     "AND NOT coalesce(erased, false)) SELECT count(*) FROM u ")
ROOT_TRAITS = f"JOIN profiles p ON p.tenant_id = {TENANT} AND p.profile_id = u.customer_id "
LIVE_ORDERS = f"o.tenant_id = {TENANT} AND o.status <> 'refunded'"


def _orders_in(days: int) -> str:
    return (f"SELECT m.customer_id FROM orders o JOIN m USING (profile_id) WHERE {LIVE_ORDERS} "
            f"AND o.ordered_at >= {_start(days)} AND o.ordered_at <= {ASOF}")


def _views_in(days: int, extra: str = "") -> str:
    return (f"SELECT m.customer_id FROM events e JOIN m USING (profile_id) WHERE e.tenant_id = {TENANT} "
            f"AND e.event = 'Product Viewed' AND e.timestamp >= {_start(days)} AND e.timestamp <= {ASOF} {extra}")


def _traits(where: str) -> str:
    return f"SELECT customer_id FROM {TRAITS} WHERE tenant_id = {TENANT} AND {where}"


# name -> (rule, the same rule in hand-written DuckDB SQL)
RULES: dict[str, tuple[Any, str]] = {
    "RFM 重要价值/保持 + bought 女装 (YJ01) in 90 days": (
        {"all": [{"trait": "rfm_group", "op": "in", "value": ["important_value", "important_maintain"]},
                 {"purchased": {"category": "YJ01"}, "within_days": 90}]},
        U + "WHERE customer_id IN (" + _traits("rfm_group IN ('important_value', 'important_maintain')")
        + ") AND customer_id IN ("
        "SELECT m.customer_id FROM order_lines l JOIN orders o ON o.id = l.order_id JOIN m ON m.profile_id = "
        f"o.profile_id WHERE l.tenant_id = {TENANT} AND {LIVE_ORDERS} AND o.ordered_at >= {_start(90)} AND "
        f"o.ordered_at <= {ASOF} AND l.quantity > l.refunded_quantity AND l.category_code IN (SELECT code FROM "
        f"categories WHERE tenant_id = {TENANT} AND (code = 'YJ01' OR parent_code = 'YJ01' OR parent_code IN "
        f"(SELECT code FROM categories WHERE tenant_id = {TENANT} AND parent_code = 'YJ01'))))"),
    "viewed >= 3 in 30 days, no purchase in 30 days": (
        {"all": [{"did": "Product Viewed", "at_least": 3, "within_days": 30},
                 {"not": {"purchased": {}, "within_days": 30}}]},
        U + f"WHERE customer_id IN ({_views_in(30)} GROUP BY 1 HAVING count(*) >= 3) "
        f"AND customer_id NOT IN ({_orders_in(30)})"),
    "city 上海 + tier gold/platinum": (
        {"all": [{"trait": "traits.city", "op": "=", "value": "上海"},
                 {"trait": "tier", "op": "in", "value": ["gold", "platinum"]}]},
        U + ROOT_TRAITS + "WHERE (p.traits->>'city') = '上海' AND customer_id IN (SELECT m.customer_id FROM "
        f"tier_assignments t JOIN m USING (profile_id) WHERE t.tenant_id = {TENANT} GROUP BY 1 "
        "HAVING arg_max(t.tier_code, t.id) IN ('gold', 'platinum'))"),
    "paid plan PLUS + points >= 2000": (
        {"all": [{"trait": "paid_plan", "op": "=", "value": "PLUS"}, {"trait": "points", "op": ">=", "value": 2000}]},
        U + "WHERE customer_id IN (SELECT m.customer_id FROM membership_periods mp JOIN m USING (profile_id) "
        f"WHERE mp.tenant_id = {TENANT} AND mp.plan_code = 'PLUS' AND mp.status IN ('active', 'grace', 'renewed') "
        "AND mp.starts_on <= DATE '2026-11-01' AND mp.grace_until > DATE '2026-11-01') AND customer_id IN ("
        f"SELECT m.customer_id FROM points_entries pe JOIN m USING (profile_id) WHERE pe.tenant_id = {TENANT} "
        "GROUP BY 1 HAVING sum(pe.amount) >= 2000)"),
    "tag vip-event or lifecycle at_risk": (
        {"any": [{"tag": "vip-event"}, {"trait": "lifecycle_stage", "op": "=", "value": "at_risk"}]},
        U + "WHERE customer_id IN (SELECT m.customer_id FROM profile_tags t JOIN m USING (profile_id) WHERE "
        f"t.tenant_id = {TENANT} AND t.tag = 'vip-event') OR customer_id IN ("
        + _traits("lifecycle_stage = 'at_risk'") + ")"),
    "spent >= ¥1000 in 杭州 stores in 180 days": (
        {"purchased": {"city": "杭州"}, "measure": "amount_fen", "at_least": 100000, "within_days": 180},
        U + f"WHERE customer_id IN ({_orders_in(180)} AND o.store_id IN (SELECT id FROM stores WHERE tenant_id = "
        f"{TENANT} AND city = '杭州') GROUP BY 1 HAVING sum(o.paid_fen - o.refunded_fen) >= 100000)"),
    "monetary >= ¥2000, no product view in 60 days": (
        {"all": [{"trait": "monetary_fen", "op": ">=", "value": 200000},
                 {"not": {"did": "Product Viewed", "within_days": 60}}]},
        U + f"WHERE customer_id IN ({_traits('monetary_fen >= 200000')}) AND customer_id NOT IN ({_views_in(60)})"),
    "female + viewed 连衣裙 >= 2 in 90 days": (
        {"all": [{"trait": "traits.gender", "op": "=", "value": "female"},
                 {"did": "Product Viewed", "where": [{"property": "category", "op": "=", "value": "连衣裙"}],
                  "at_least": 2, "within_days": 90}]},
        U + ROOT_TRAITS + "WHERE (p.traits->>'gender') = 'female' AND customer_id IN ("
        + _views_in(90, "AND (e.properties->>'category') = '连衣裙'") + " GROUP BY 1 HAVING count(*) >= 2)"),
    ">= 3 orders in 2026 Q3": (
        {"purchased": {}, "at_least": 3, "between_dates": ["2026-07-01", "2026-09-30"]},
        U + f"WHERE customer_id IN (SELECT m.customer_id FROM orders o JOIN m USING (profile_id) WHERE {LIVE_ORDERS} "
        "AND o.ordered_at >= TIMESTAMPTZ '2026-06-30 16:00:00+00' AND o.ordered_at < TIMESTAMPTZ "
        "'2026-09-30 16:00:00+00' GROUP BY 1 HAVING count(*) >= 3)"),
    "has a tier, no purchase in 180 days": (
        {"all": [{"trait": "tier", "op": "is_set"},
                 {"purchased": {}, "at_least": 0, "at_most": 0, "within_days": 180}]},
        U + "WHERE customer_id IN (SELECT m.customer_id FROM tier_assignments t JOIN m USING (profile_id) WHERE "
        f"t.tenant_id = {TENANT}) AND customer_id NOT IN ({_orders_in(180)})"),
}


def derive_traits(con: Any) -> None:
    """RFM scores, groups (the traits job's eight codes) and lifecycle stages in a temp table: the
    warehouse file is opened read-only, and both sides of the comparison read the same table."""
    con.con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {TRAITS} AS
        WITH per AS (
            SELECT m.tenant_id, m.customer_id, count(*) AS frequency, sum(o.paid_fen - o.refunded_fen) AS monetary_fen,
                   date_diff('day', max(o.ordered_at), {ASOF}) AS recency_days
            FROM orders o JOIN identity_map m ON m.profile_id = o.profile_id
            WHERE o.status <> 'refunded' GROUP BY ALL),
        scored AS (
            SELECT *, ntile(5) OVER (PARTITION BY tenant_id ORDER BY recency_days DESC, customer_id) AS r_score,
                   ntile(5) OVER (PARTITION BY tenant_id ORDER BY frequency, customer_id) AS f_score,
                   ntile(5) OVER (PARTITION BY tenant_id ORDER BY monetary_fen, customer_id) AS m_score FROM per)
        SELECT tenant_id, customer_id, recency_days, frequency, monetary_fen, r_score, f_score, m_score,
               (CASE WHEN m_score >= 3 THEN 'important_' ELSE 'general_' END) ||
               (CASE WHEN r_score >= 3 AND f_score >= 3 THEN 'value' WHEN r_score >= 3 THEN 'development'
                     WHEN f_score >= 3 THEN 'maintain' ELSE 'winback' END) AS rfm_group,
               CASE WHEN recency_days <= 90 THEN 'active' WHEN recency_days <= 180 THEN 'at_risk'
                    ELSE 'lapsed' END AS lifecycle_stage
        FROM scored""")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", type=Path, default=world_warehouse.LARGE_WORLD.with_suffix(".duckdb"))
    parser.add_argument("--world", type=Path, default=world_warehouse.LARGE_WORLD)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if not args.warehouse.exists():
        world_warehouse.ensure(args.world, args.warehouse)
    con = ibis.duckdb.connect(str(args.warehouse), read_only=True)
    clock = time.perf_counter()
    derive_traits(con)
    print(f"warehouse {args.warehouse}: {con.con.execute('SELECT count(*) FROM identity_map').fetchone()[0]:,} "
          f"profiles, {con.con.execute('SELECT count(*) FROM orders').fetchone()[0]:,} orders; "
          f"RFM derived in {time.perf_counter() - clock:.1f} s")

    traits = ibis.table(LAYOUTS[CUSTOMER_TRAITS], name=TRAITS)

    def table(name: str) -> Any:  # as the API does (service.declared_table), with the bench's traits
        return traits if name == "customer_traits" else service.declared_table(name)

    ours_all: list[float] = []
    hand_all: list[float] = []
    shape_all: list[float] = []
    print(f"\n{'rule':<48} {'count':>9} {'ours p50':>9} {'p99':>7} {'hand p50':>9} {'p99':>7} {'ratio':>6} "
          f"{'SQL only':>9}")
    for name, (raw, sql) in RULES.items():
        con.con.execute(sql).fetchone()  # warm both once
        ours, hand, shape, counts = [], [], [], set()
        compiled = str(ibis.to_sql(compiler.count(rules.parse(raw), compiler.Scope(TENANT, AS_OF, ZONE, table)),
                                   dialect="duckdb"))
        for _ in range(args.repeat):
            started = time.perf_counter()
            scope = compiler.Scope(TENANT, AS_OF, ZONE, table)  # a new one per preview, as in the API
            counts.add(int(con.execute(compiler.count(rules.parse(raw), scope))))
            ours.append(time.perf_counter() - started)
            started = time.perf_counter()
            counts.add(int(con.con.execute(sql).fetchone()[0]))
            hand.append(time.perf_counter() - started)
            started = time.perf_counter()  # the compiled SQL alone: the query's shape without Ibis's work
            counts.add(int(con.con.execute(compiled).fetchone()[0]))
            shape.append(time.perf_counter() - started)
        if len(counts) != 1:
            raise SystemExit(f"{name}: the compiler and the hand-written SQL disagree: {sorted(counts)}")
        ours_all += ours
        hand_all += hand
        shape_all += shape
        print(f"{name:<48} {counts.pop():>9,} {statistics.median(ours):>9.3f} {percentile(ours, 0.99):>7.3f} "
              f"{statistics.median(hand):>9.3f} {percentile(hand, 0.99):>7.3f} "
              f"{statistics.median(ours) / statistics.median(hand):>6.2f} {statistics.median(shape):>9.3f}")
    p50, hand_p50 = statistics.median(ours_all), statistics.median(hand_all)
    print(f"{'all rules':<48} {'':>9} {p50:>9.3f} {percentile(ours_all, 0.99):>7.3f} {hand_p50:>9.3f} "
          f"{percentile(hand_all, 0.99):>7.3f} {p50 / hand_p50:>6.2f} {statistics.median(shape_all):>9.3f}")
    met = p50 <= 0.5 and p50 <= 1.5 * hand_p50
    print(f"\ntarget: p50 <= 0.5 s and <= 1.5 x hand-written SQL: {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
