"""KPI page queries on the large demo world's DuckDB warehouse: each page (overview, breakdowns, trend,
cohorts, RFM) for a month and for a year, through lianjie.analytics (Ibis), next to a hand-written DuckDB
SQL for the same figures in the same run; both must agree. Target: every page within 1 s.

``python bench/kpis.py [--world DIR] [--warehouse FILE] [--runs 5]`` builds the warehouse file with
bench/world_warehouse.py when it is missing (``FILE`` defaults to ``DIR.duckdb`` beside the world),
opens it read-only and times the merchant with the most orders; ``--synthetic 7000000 --warehouse
FILE`` times a generated stand-in of that size instead (see :func:`synthetic`). The figures are p50 and p99 (with a
handful of runs, p99 is the slowest) after one warm-up run of each page, and the CPU seconds the
process spent (DuckDB's threads included), which a busy machine does not inflate.

When the traits job has not filled ``customer_traits`` in the file, a plain RFM (quintile scores over
the merchant's orders) goes into a temporary table of the same name for this run, so the RFM page
reads rows; the file itself is never written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ibis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import world_warehouse  # noqa: E402
from lianjie.analytics import customers, periods, sales  # noqa: E402
from lianjie.analytics.periods import Range  # noqa: E402
from lianjie.warehouse.tables import LAYOUTS  # noqa: E402

ZONE = "Asia/Shanghai"
OFFSET_US = 8 * 3600 * 1_000_000  # Asia/Shanghai has no daylight saving
DAY_US = 86_400_000_000


def _ts(at: dt.datetime) -> str:
    return f"TIMESTAMPTZ '{at.isoformat()}'"


def _orders_sql(tenant: int, start: dt.datetime, end: dt.datetime) -> str:
    """The merchant's orders in [start, end) with their customer (merged profiles through the map)."""
    return (f"SELECT o.*, coalesce(m.customer_id, o.profile_id) AS customer_id FROM orders o "
            f"LEFT JOIN identity_map m ON m.tenant_id = {tenant} AND m.profile_id = o.profile_id "
            f"AND m.customer_id <> m.profile_id WHERE o.tenant_id = {tenant} AND o.ordered_at >= {_ts(start)} "
            f"AND o.ordered_at < {_ts(end)}")


def _members_sql(tenant: int) -> str:
    return (f"SELECT coalesce(m.customer_id, j.profile_id) AS customer_id, min(j.at) AS since FROM ("
            f"SELECT profile_id, created_at AS at FROM tier_assignments WHERE tenant_id = {tenant} UNION ALL "
            f"SELECT profile_id, created_at FROM membership_periods WHERE tenant_id = {tenant}) j "
            f"LEFT JOIN identity_map m ON m.tenant_id = {tenant} AND m.profile_id = j.profile_id GROUP BY 1")


def sql_overview(db: Any, tenant: int, rng: Range) -> dict[str, tuple[int, ...]]:
    prev = rng.previous()
    rows = db.execute(
        f"WITH o AS ({_orders_sql(tenant, prev.start, rng.end)}), "
        f"per AS (SELECT ordered_at >= {_ts(rng.start)} AS cur, customer_id, count(*) AS n, sum(paid_fen) AS g, "
        f"sum(refunded_fen) AS r FROM o GROUP BY ALL) "
        f"SELECT cur, sum(n), sum(g), sum(r), count(customer_id), "
        f"count(*) FILTER (customer_id IS NOT NULL AND n >= 2), "
        f"count(*) FILTER (since < CASE WHEN cur THEN {_ts(rng.end)} ELSE {_ts(rng.start)} END "
        f"AND customer_id IS NOT NULL) FROM per LEFT JOIN ({_members_sql(tenant)}) USING (customer_id) "
        f"GROUP BY cur").fetchall()
    counts = db.execute(f"SELECT count(*) FILTER (since < {_ts(rng.end)}), count(*) FILTER (since >= "
                        f"{_ts(rng.start)} AND since < {_ts(rng.end)}) FROM ({_members_sql(tenant)})").fetchone()
    out = {("current" if r[0] else "previous"): tuple(int(v or 0) for v in r[1:]) for r in rows}
    out["members"] = tuple(int(v) for v in counts)
    return out


def ibis_overview(con: Any, tenant: int, rng: Range) -> dict[str, tuple[int, ...]]:
    cur, prev = sales.overview(con, tenant, rng)
    out: dict[str, tuple[int, ...]] = {
        name: (f.orders, f.gross_fen, f.refunded_fen, f.buyers, f.repeat_buyers, f.member_buyers)
        for name, f in (("current", cur), ("previous", prev)) if f.orders}
    out["members"] = (cur.members, cur.new_members)
    return out


def sql_breakdown(db: Any, tenant: int, rng: Range, by: str) -> list[tuple[Any, ...]]:
    column = {"store": "store_id", "guide": "guide_id", "channel": "channel"}[by]
    rows = db.execute(
        f"SELECT k, sum(n), sum(g), sum(r), count(customer_id), sum(g - r) FILTER (since < {_ts(rng.end)} "
        f"AND customer_id IS NOT NULL) FROM (SELECT {column} AS k, customer_id, count(*) AS n, sum(paid_fen) AS g, "
        f"sum(refunded_fen) AS r FROM ({_orders_sql(tenant, rng.start, rng.end)}) GROUP BY ALL) "
        f"LEFT JOIN ({_members_sql(tenant)}) USING (customer_id) GROUP BY k").fetchall()
    return sorted((tuple(int(v or 0) if i else v for i, v in enumerate(r)) for r in rows), key=_by_key)


def ibis_breakdown(con: Any, tenant: int, rng: Range, by: sales.Dimension) -> list[tuple[Any, ...]]:
    return sorted(((r.key, r.orders, r.gross_fen, r.refunded_fen, r.buyers, r.member_net_fen)
                   for r in sales.breakdown(con, tenant, rng, by)), key=_by_key)


def _by_key(row: tuple[Any, ...]) -> tuple[bool, str]:
    return row[0] is None, str(row[0])


def sql_trend(db: Any, tenant: int, rng: Range) -> list[tuple[Any, ...]]:
    rows = db.execute(f"SELECT (epoch_us(ordered_at) + {OFFSET_US}) // {DAY_US} AS d, count(*), sum(paid_fen), "
                      f"count(DISTINCT customer_id) FROM ({_orders_sql(tenant, rng.start, rng.end)}) GROUP BY 1 "
                      "ORDER BY 1").fetchall()
    return [(periods.EPOCH + dt.timedelta(days=d), n, int(g), b) for d, n, g, b in rows]


def ibis_trend(con: Any, tenant: int, rng: Range) -> list[tuple[Any, ...]]:
    return [(p.start, p.orders, p.gross_fen, p.buyers) for p in sales.trend(con, tenant, rng, "day") if p.orders]


def _month_sql(column: str) -> str:
    day = f"((epoch_us({column}) + {OFFSET_US}) // {DAY_US})::INTEGER"
    return f"strftime(DATE '1970-01-01' + {day}, '%Y-%m')"


def sql_cohorts(db: Any, tenant: int, rng: Range) -> list[tuple[Any, ...]]:
    every = _orders_sql(tenant, dt.datetime(1970, 1, 1, tzinfo=dt.UTC), rng.end)
    rows = db.execute(
        f"WITH o AS ({every}), first AS (SELECT customer_id, min(ordered_at) AS f FROM o "
        f"WHERE customer_id IS NOT NULL GROUP BY 1 HAVING min(ordered_at) >= {_ts(rng.start)}), "
        f"act AS (SELECT DISTINCT customer_id, {_month_sql('ordered_at')} AS m FROM o "
        f"WHERE ordered_at >= {_ts(rng.start)} AND customer_id IS NOT NULL) "
        f"SELECT {_month_sql('f')} AS c, m, count(*) FROM first JOIN act USING (customer_id) GROUP BY 1, 2").fetchall()
    return sorted(rows)


def ibis_cohorts(con: Any, tenant: int, rng: Range) -> list[tuple[Any, ...]]:
    out = []
    for row in customers.cohorts(con, tenant, rng):
        first = periods.month_index(dt.date.fromisoformat(row.cohort + "-01"))
        out += [(row.cohort, f"{periods.month_of(first + k):%Y-%m}", n) for k, n in enumerate(row.retained) if n]
    return sorted(out)


def sql_rfm(db: Any, tenant: int) -> list[tuple[Any, ...]]:
    rows = db.execute(f"SELECT rfm_group, count(*), sum(monetary_fen) FROM customer_traits WHERE tenant_id = {tenant} "
                      "GROUP BY 1").fetchall()
    return sorted((g, n, int(m or 0)) for g, n, m in rows)


def ibis_rfm(con: Any, tenant: int) -> list[tuple[Any, ...]]:
    return sorted((g.rfm_group, g.customers, g.monetary_fen) for g in customers.rfm(con, tenant).groups)


def fill_traits_if_empty(db: Any, tenant: int, at: dt.datetime) -> bool:
    """A temporary ``customer_traits`` with plain RFM groups when the file has none for the merchant."""
    if db.execute(f"SELECT count(*) FROM customer_traits WHERE tenant_id = {tenant}").fetchone()[0]:
        return False
    db.execute("CREATE TEMP TABLE customer_traits AS SELECT * FROM main.customer_traits LIMIT 0")
    db.execute(
        f"INSERT INTO customer_traits (tenant_id, customer_id, computed_at, first_order_at, last_order_at, "
        f"recency_days, frequency, monetary_fen, r_score, f_score, m_score, rfm_group) "
        f"SELECT {tenant}, customer_id, {_ts(at)}, first, last, date_diff('day', last, {_ts(at)}), n, m, r, f, s, "
        "CASE WHEN r >= 3 THEN 'important' ELSE 'general' END || '_' || CASE WHEN f >= 3 THEN 'frequent' "
        "ELSE 'rare' END || '_' || CASE WHEN s >= 3 THEN 'high' ELSE 'low' END FROM (SELECT *, "
        "ntile(5) OVER (ORDER BY last) AS r, ntile(5) OVER (ORDER BY n) AS f, ntile(5) OVER (ORDER BY m) AS s "
        "FROM (SELECT customer_id, min(ordered_at) AS first, max(ordered_at) AS last, count(*) AS n, "
        f"sum(paid_fen - refunded_fen) AS m FROM ({_orders_sql(tenant, dt.datetime(1970, 1, 1, tzinfo=dt.UTC), at)}) "
        "WHERE customer_id IS NOT NULL GROUP BY 1))")
    return True


def pages(con: Any, tenant: int, rng: Range) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """(page, its Ibis query, the hand-written SQL) for one range."""
    db = con.con
    cohort_range = Range.of(rng.first.replace(day=1), rng.last, ZONE)
    out: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
        ("overview", lambda: ibis_overview(con, tenant, rng), lambda: sql_overview(db, tenant, rng)),
        ("trend (day)", lambda: ibis_trend(con, tenant, rng), lambda: sql_trend(db, tenant, rng))]
    for by in ("store", "guide", "channel"):
        out.append((f"breakdown {by}", lambda by=by: ibis_breakdown(con, tenant, rng, by),  # type: ignore[misc]
                    lambda by=by: sql_breakdown(db, tenant, rng, by)))  # type: ignore[misc]
    out += [("cohorts", lambda: ibis_cohorts(con, tenant, cohort_range), lambda: sql_cohorts(db, tenant, cohort_range)),
            ("rfm", lambda: ibis_rfm(con, tenant), lambda: sql_rfm(db, tenant))]
    return out


def synthetic(path: Path, orders: int) -> None:
    """A stand-in warehouse for when the large world's file is not built: one merchant (id 3) with
    ``orders`` orders over the year to 2026-10-31 from 1,000,000 profiles (10 % guests, 4 % refunded in
    full, 3 % in part), 500,000 merged profiles, 600,000 tier assignments, 150 stores, 800 guides."""
    con = ibis.duckdb.connect(str(path))
    for name, layout in LAYOUTS.items():
        con.create_table(name, schema=layout, overwrite=True)
    db = con.con
    db.execute("SET TimeZone = 'UTC'")
    db.execute(
        "INSERT INTO orders SELECT i, 3, 'SO' || i, CASE WHEN i % 10 = 0 THEN NULL ELSE hash(i) % 1000000 + 1 END, "
        "30000 + i % 150, CASE WHEN i % 3 = 0 THEN NULL ELSE 300000 + i % 800 END, "
        "['offline', 'online', 'miniprogram', 'wecom'][1 + i % 4], 'wechat', 'CNY', 10000, 0, 5000 + i % 9000, "
        "CASE WHEN i % 25 = 0 THEN 5000 + i % 9000 WHEN i % 31 = 0 THEN 1000 ELSE 0 END, CASE WHEN i % 25 = 0 "
        "THEN 'refunded' WHEN i % 31 = 0 THEN 'partially_refunded' ELSE 'completed' END, "
        "TIMESTAMPTZ '2025-10-31 16:00:00+00' + to_seconds((hash(i * 7) % (365 * 86400))::BIGINT), "
        f"TIMESTAMPTZ '2026-11-01 00:00:00+00' FROM range(1, {orders} + 1) t(i)")
    db.execute("INSERT INTO identity_map SELECT 3, i, i, false FROM range(1, 1000001) t(i) UNION ALL "
               "SELECT 3, 1000000 + i, i, false FROM range(1, 500001) t(i)")
    db.execute("INSERT INTO tier_assignments SELECT i, 3, i, 'silver', NULL, 'evaluation', TIMESTAMPTZ "
               "'2025-06-01 00:00:00+00' + to_seconds((hash(i) % (500 * 86400))::BIGINT) FROM range(1, 600001) t(i)")
    db.execute("INSERT INTO stores SELECT 30000 + i, 3, 'S' || i, 'store ' || i, 'c', 'p', 'mall', 'open' "
               "FROM range(0, 150) t(i)")
    db.execute("INSERT INTO staff SELECT 300000 + i, 3, 'G' || i, 'guide ' || i, 'guide', 30000 + i % 150, 'active' "
               "FROM range(0, 800) t(i)")
    con.disconnect()


def timed(function: Callable[[], Any], runs: int) -> tuple[float, float, float, Any]:
    """p50 and p99 wall seconds, p50 CPU seconds of this process (DuckDB's threads included: a figure
    that other work on a busy machine does not inflate), and the answer of the warm-up run."""
    result = function()  # warm-up, and the answer compared
    times, cpu = [], []
    for _ in range(runs):
        clock, used = time.perf_counter(), time.process_time()
        function()
        times.append(time.perf_counter() - clock)
        cpu.append(time.process_time() - used)
    times.sort()
    return statistics.median(times), times[math.ceil(0.99 * len(times)) - 1], statistics.median(cpu), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", type=Path, default=world_warehouse.LARGE_WORLD)
    parser.add_argument("--warehouse", type=Path, help="the DuckDB file (default: WORLD.duckdb)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tenant", type=int, help="merchant id (default: the one with the most orders)")
    parser.add_argument("--end", default="2026-10-31", help="last local day of both ranges")
    parser.add_argument("--synthetic", type=int, metavar="ORDERS",
                        help="build (if missing) and time a synthetic warehouse of ORDERS orders at --warehouse")
    args = parser.parse_args()
    path = args.warehouse or args.world.with_suffix(".duckdb")
    if args.synthetic and not path.exists():
        synthetic(path, args.synthetic)
    elif not path.exists():
        world_warehouse.ensure(args.world, path)
    con = ibis.duckdb.connect(str(path), read_only=True)
    db = con.con  # the baseline's own SQL goes straight to DuckDB
    tenant = args.tenant or db.execute("SELECT tenant_id FROM orders GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
                                       ).fetchone()[0]
    orders = db.execute(f"SELECT count(*) FROM orders WHERE tenant_id = {tenant}").fetchone()[0]
    end = dt.date.fromisoformat(args.end)
    traits = fill_traits_if_empty(db, tenant, periods.local_midnight(end + dt.timedelta(days=1), ZONE))
    print(f"{path}: merchant {tenant}, {orders:,} orders; {args.runs} runs after a warm-up"
          + ("; plain RFM traits in a temp table" if traits else ""), flush=True)
    month = Range.of(end.replace(day=1), end, ZONE)
    year = Range.of(periods.month_of(periods.month_index(end) - 11), end, ZONE)
    print(f"{'page':<18} {'range':<6} {'ibis p50':>9} {'p99':>7} {'cpu':>6} {'sql p50':>8} {'p99':>7} {'cpu':>6} "
          f"{'ratio':>6}  agree")
    worst = 0.0
    for label, rng in (("month", month), ("year", year)):
        for name, ours, theirs in pages(con, tenant, rng):
            p50, p99, cpu, answer = timed(ours, args.runs)
            s50, s99, scpu, expected = timed(theirs, args.runs)
            worst = max(worst, p99)
            print(f"{name:<18} {label:<6} {p50:>8.3f}s {p99:>6.3f}s {cpu:>5.2f}s {s50:>7.3f}s {s99:>6.3f}s "
                  f"{scpu:>5.2f}s {p50 / s50:>6.2f}  {'yes' if answer == expected else 'NO'}", flush=True)
            if answer != expected:
                print(f"  ibis: {str(answer)[:300]}\n  sql:  {str(expected)[:300]}", flush=True)
    print(f"slowest page p99: {worst:.3f} s (target 1 s)")


if __name__ == "__main__":
    main()
