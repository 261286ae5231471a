"""Benchmark: computing customer traits (RFM, lifecycle stage, CLV; `lianjie traits compute`) for one
merchant with --customers customers in a DuckDB warehouse, next to the plainest per-customer pass
over the same orders (count and net sum per customer, fetched), measured in the same run.

The warehouse is generated here with NumPy (not the demo world), so the bench needs nothing else:
each customer buys 1 + Poisson(2) times at gaps of an exponential number of days around their own
mean, from a first purchase in the last two years; 3 % of orders are refunded in full and 5 % in
part, 5 % are guest orders, 2 % of customers are erased and 10 % of buyers own a second profile
merged into the first.

    python bench/traits.py [--customers 1000000] [--seed 7]

With ``--warehouse FILE`` it reads an existing DuckDB warehouse instead (opened read-only, nothing is
written; e.g. the large demo world's from bench/world_warehouse.py) and computes every merchant's
traits as of its last order.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import ibis
import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lianjie.audience import traits  # noqa: E402
from lianjie.audience.settings import AudienceSettings  # noqa: E402
from lianjie.warehouse.tables import IDENTITY_MAP, ORDERS  # noqa: E402

AS_OF = dt.datetime(2026, 7, 1, 6, 0, tzinfo=dt.UTC)


def generate(con: ibis.BaseBackend, customers: int, seed: int) -> int:
    """Fill ``orders`` and ``identity_map``; returns the number of orders."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, customers + 1)
    counts = 1 + rng.poisson(2.0, customers)
    owner = np.repeat(ids, counts)
    mean_gap = rng.gamma(2.0, 30.0, customers)
    gaps = rng.exponential(np.repeat(mean_gap, counts))
    starts = np.cumsum(counts) - counts
    gaps[starts] = 0.0
    within = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[starts], counts)
    first_days_ago = rng.uniform(0, 730, customers)
    seconds_ago = (np.repeat(first_days_ago, counts) - within) * 86_400
    keep = seconds_ago > 0
    owner, seconds_ago = owner[keep], seconds_ago[keep]
    n = len(owner)
    paid = (rng.gamma(3.0, 6_000.0, n)).astype(np.int64) + 100
    fate = rng.random(n)
    refunded = np.where(fate < 0.03, paid, np.where(fate < 0.08, paid // 3, 0))
    status = np.where(fate < 0.03, "refunded", np.where(fate < 0.08, "partially_refunded", "completed"))
    second = customers + ids  # the merged-in profile of each customer (used by 10 % of them)
    merged = rng.random(customers) < 0.10
    use_second = merged[owner - 1] & (rng.random(n) < 0.5)
    profile = np.where(use_second, second[owner - 1], owner).astype(object)
    profile[rng.random(n) < 0.05] = None
    ordered_at = np.datetime64(AS_OF.replace(tzinfo=None), "us") - (seconds_ago * 1e6).astype("timedelta64[us]")
    orders = {"id": np.arange(1, n + 1), "tenant_id": np.ones(n, np.int64), "order_no": None,
              "profile_id": profile, "store_id": None, "guide_id": None, "channel": None, "payment_method": None,
              "currency": None, "list_fen": paid, "discount_fen": np.zeros(n, np.int64), "paid_fen": paid,
              "refunded_fen": refunded, "status": status, "ordered_at": ordered_at, "updated_at": ordered_at}
    schema = ORDERS.schema.to_pyarrow()
    con.create_table("orders", obj=pa.table({name: pa.array([None] * n, schema.field(name).type)
                                             if orders[name] is None else orders[name] for name in schema.names},
                                            schema=schema), overwrite=True)
    extra = ids[merged]
    idmap = {"tenant_id": np.ones(customers + len(extra), np.int64),
             "profile_id": np.concatenate([ids, second[merged]]), "customer_id": np.concatenate([ids, extra]),
             "erased": np.concatenate([rng.random(customers) < 0.02, np.zeros(len(extra), bool)])}
    con.create_table("identity_map", obj=pa.table(idmap, schema=IDENTITY_MAP.schema.to_pyarrow()), overwrite=True)
    return n


def existing(path: Path) -> None:
    """Every merchant of a built warehouse, as of its last order; nothing written."""
    con = ibis.duckdb.connect(str(path), read_only=True)
    plain, grouped = baseline(con)
    orders = con.table("orders")
    ends = orders.group_by("tenant_id").aggregate(end=orders.ordered_at.max()).to_pyarrow().to_pylist()
    total = 0.0
    for merchant in sorted(ends, key=lambda m: m["tenant_id"]):
        started = time.perf_counter()
        run = traits.compute_merchant(con, merchant["tenant_id"], "Asia/Shanghai", AudienceSettings(), merchant["end"])
        took = time.perf_counter() - started
        total += took
        print(f"merchant {run.tenant_id}: {took:.1f} s for {run.rows.num_rows:,} customers "
              f"({run.repeat_buyers:,} repeat buyers), stages {run.counts}, thresholds {run.summary()['thresholds']}")
    print(f"traits: {total:.1f} s in all; baseline: count + net sum per customer ({grouped:,} rows) in {plain:.2f} s; "
          f"traits at {total / plain:.1f}x")


def baseline(con: ibis.BaseBackend) -> tuple[float, int]:
    """Orders per customer and their net sum, through identity_map, fetched: the least any trait needs."""
    started = time.perf_counter()
    orders, idmap = con.table("orders"), con.table("identity_map")
    joined = orders.join(idmap, orders.profile_id == idmap.profile_id).select(
        idmap.customer_id, net=orders.paid_fen - orders.refunded_fen)
    rows = joined.group_by("customer_id").aggregate(n=joined.count(), net=joined.net.sum()).to_pyarrow()
    return time.perf_counter() - started, rows.num_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--warehouse", type=Path, help="an existing DuckDB warehouse file, read only")
    args = parser.parse_args()
    if args.warehouse is not None:
        existing(args.warehouse)
        return
    con = ibis.duckdb.connect()
    started = time.perf_counter()
    orders = generate(con, args.customers, args.seed)
    print(f"generated {args.customers:,} customers, {orders:,} orders in {time.perf_counter() - started:.1f} s")
    plain, grouped = baseline(con)
    started = time.perf_counter()
    run = traits.compute_merchant(con, 1, "Asia/Shanghai", AudienceSettings(), AS_OF)
    computed = time.perf_counter() - started
    started = time.perf_counter()
    traits.write(con, [run], everyone=True)
    written = time.perf_counter() - started
    summary = run.summary()
    print(f"traits: {computed:.2f} s for {run.rows.num_rows:,} customers ({run.repeat_buyers:,} repeat buyers, "
          f"thresholds {summary['thresholds']}, CLV {'fitted' if run.clv else 'not fitted'}); "
          f"customer_traits written in {written:.2f} s")
    print(f"stages: {summary['stages']}")
    print(f"baseline: count + net sum per customer ({grouped:,} rows) in {plain:.2f} s; "
          f"traits at {computed / plain:.1f}x")


if __name__ == "__main__":
    main()
