"""Benchmark: closing a month's coalition settlement statement over --entries ledger entries (1M by
default), next to a plain GROUP BY over the same rows measured in the same run.

For each database (SQLite, and PostgreSQL when a server can be started or --postgres-url is given):
migrates a fresh database, creates an operator and --merchants member merchants (half prepaid, half
postpaid, prices with fractions of a fen), a coalition and --cards cards, then bulk-loads the
entries, all booked in March 2026 (Asia/Shanghai): 50 % issue, 44 % redeem, 5 % expire, 1 % prepaid
block purchases, with --lots lots of which 10 % lapse inside March, so closing has real expiry work.
Loading is bulk (SQLite executemany on the driver, PostgreSQL COPY) and not part of the timing.

Timed, each on its own: closing March (``settlement.close``: expire the lapsed lots, aggregate,
store the lines, in one transaction), then recomputing the closed statement from the ledger
(``settlement.recompute``), and as the baseline
``SELECT tenant_id, kind, sum(points) FROM coalition_entries GROUP BY tenant_id, kind``.

    python bench/settlement.py [--entries 1000000] [--merchants 20] [--cards 50000] [--lots 20000]
                               [--postgres-url URL] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, text  # noqa: E402

from lianjie import migrate, wiring  # noqa: E402
from lianjie.db import create_db_engine, make_session_factory, sqlite_time, transaction  # noqa: E402
from lianjie.loyalty.coalition import settlement, setup  # noqa: E402
from lianjie.loyalty.coalition.models import Coalition, CoalitionOperation  # noqa: E402
from lianjie.loyalty.coalition.schemas import CoalitionIn, MemberIn  # noqa: E402
from lianjie.tenants import service as tenants  # noqa: E402
from lianjie.tenants.schemas import MerchantCreate  # noqa: E402
from tests import postgres  # noqa: E402

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
MARCH = dt.datetime(2026, 3, 1, tzinfo=SHANGHAI).astimezone(dt.UTC)
MARCH_SECONDS = 31 * 86400
ENTRY_COLUMNS = ("coalition_id", "tenant_id", "card_id", "operation_id", "lot_id", "kind", "points",
                 "price_milli_fen", "funding", "occurred_at", "booked_at")
LOT_COLUMNS = ("coalition_id", "tenant_id", "card_id", "operation_id", "amount", "remaining", "earned_at",
               "expires_at")


Member = tuple[int, int, int, str, int]


def setup_world(engine: Engine, merchants: int) -> tuple[int, list[Member]]:
    """The coalition and its members: (tenant id, issue price, redemption value, funding, an operation
    for the bulk-loaded lots to name) each."""
    with transaction(make_session_factory(engine), write=True) as session:
        operator, _ = tenants.create_merchant(session, MerchantCreate(slug="ccc", name="联盟运营"))
        coalition, _ = setup.create(session, operator.id, CoalitionIn(code="bench", name="压测联盟", expiry_days=365))
        acc = setup.access(session, "bench", operator.id)
        members = []
        for n in range(merchants):
            merchant, _ = tenants.create_merchant(session, MerchantCreate(slug=f"m{n:03d}", name=f"商户{n}"))
            funding = "prepaid" if n % 2 else "postpaid"
            terms = MemberIn.model_validate({"issue_price_fen_per_point": f"{10 + n % 3}.5",
                                             "redemption_value_fen_per_point": f"{8 + n % 4}.25",
                                             "funding": funding})
            member, _ = setup.put_member(session, acc, merchant.slug, terms)
            member.joined_at = MARCH - dt.timedelta(days=90)
            seed = CoalitionOperation(coalition_id=coalition.id, tenant_id=merchant.id, idempotency_key="bench",
                                      kind="issue", request={}, points=0, created_at=MARCH)
            session.add(seed)
            session.flush()
            members.append((merchant.id, member.issue_price_milli_fen, member.redemption_value_milli_fen, funding,
                            seed.id))
        return coalition.id, members


def _time(sqlite: bool, moment: dt.datetime) -> Any:
    return sqlite_time(moment) if sqlite else moment


def _batches(rows: Iterator[tuple[Any, ...]], size: int = 50_000) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def bulk_load(engine: Engine, table: str, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]) -> int:
    """Rows straight through the driver: executemany on SQLite, COPY on PostgreSQL."""
    raw = engine.raw_connection()
    count = 0
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "sqlite":
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            for batch in _batches(rows):
                cursor.executemany(sql, batch)
                count += len(batch)
        else:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
        raw.commit()
    finally:
        raw.close()
    return count


def load(engine: Engine, coalition_id: int, members: list[Member], args: argparse.Namespace) -> None:
    sqlite = engine.dialect.name == "sqlite"
    rng = random.Random(42)
    now = _time(sqlite, MARCH)
    bulk_load(engine, "coalition_cards", ("coalition_id", "card_no", "created_at"),
              ((coalition_id, f"{n:016d}", now) for n in range(args.cards)))
    with engine.connect() as conn:
        first_card = int(conn.execute(text("SELECT min(id) FROM coalition_cards")).scalar_one())

    def lots() -> Iterator[tuple[Any, ...]]:
        for n in range(args.lots):
            tenant_id, *_, operation_id = members[n % len(members)]
            earned = MARCH - dt.timedelta(days=rng.randint(1, 300))
            lapses = n % 10 == 0  # inside March: closing expires it
            expires = MARCH + dt.timedelta(seconds=rng.randrange(MARCH_SECONDS)) if lapses \
                else MARCH + dt.timedelta(days=rng.randint(40, 300))
            amount = rng.randint(10, 500)
            yield (coalition_id, tenant_id, first_card + rng.randrange(args.cards), operation_id, amount,
                   rng.randint(1, amount), _time(sqlite, earned), _time(sqlite, expires))

    def entries() -> Iterator[tuple[Any, ...]]:
        for _ in range(args.entries):
            tenant_id, issue, redeem, funding, _ = members[rng.randrange(len(members))]
            at = _time(sqlite, MARCH + dt.timedelta(seconds=rng.randrange(MARCH_SECONDS)))
            card = first_card + rng.randrange(args.cards)
            roll = rng.random()
            row: tuple[Any, ...]
            if roll < 0.50:
                row = (card, "issue", rng.randint(1, 500), issue, funding)
            elif roll < 0.94:
                row = (card, "redeem", -rng.randint(1, 500), redeem, None)
            elif roll < 0.99:
                row = (card, "expire", -rng.randint(1, 200), 0, None)
            else:
                row = (None, "purchase", 10_000, issue, None)
            yield (coalition_id, tenant_id, row[0], None, None, row[1], row[2], row[3], row[4], at, at)

    bulk_load(engine, "coalition_lots", LOT_COLUMNS, lots())
    bulk_load(engine, "coalition_entries", ENTRY_COLUMNS, entries())
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def run_one(label: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    engine = create_db_engine(url)
    migrate.upgrade_engine(engine)
    coalition_id, members = setup_world(engine, args.merchants)
    started = time.perf_counter()
    load(engine, coalition_id, members, args)
    load_s = time.perf_counter() - started
    factory = make_session_factory(engine)

    started = time.perf_counter()
    with engine.connect() as conn:
        conn.execute(text("SELECT tenant_id, kind, sum(points) FROM coalition_entries GROUP BY tenant_id, kind")).all()
    baseline_s = time.perf_counter() - started

    started = time.perf_counter()
    with transaction(factory, write=True) as session:
        coalition = session.get_one(Coalition, coalition_id)
        settlement.close(session, coalition, "2026-03", closed_by="bench")
    close_s = time.perf_counter() - started

    started = time.perf_counter()
    with transaction(factory) as session:
        coalition = session.get_one(Coalition, coalition_id)
        problems = settlement.recompute(session, coalition, "2026-03")
        statement = settlement.statement(session, setup.access(session, "bench", coalition.operator_tenant_id),
                                         "2026-03")
    recompute_s = time.perf_counter() - started
    assert problems == [], problems
    assert statement.net_total_fen == 0
    with engine.connect() as conn:
        expired_lots = conn.execute(text("SELECT count(*) FROM coalition_lots WHERE remaining = 0")).scalar_one()
    engine.dispose()
    return {"database": label, "load_s": load_s, "close_s": close_s, "recompute_s": recompute_s,
            "baseline_s": baseline_s, "expired_lots": expired_lots, "lines": len(statement.lines)}


def add_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """The settlement options (``prefix`` keeps them apart inside bench/coupons.py)."""
    parser.add_argument(f"--{prefix}entries", type=int, default=1_000_000)
    parser.add_argument(f"--{prefix}merchants", type=int, default=20)
    parser.add_argument(f"--{prefix}cards", type=int, default=50_000)
    parser.add_argument(f"--{prefix}lots", type=int, default=20_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(parser)
    parser.add_argument("--postgres-url", help="an existing server; default: start a throwaway one")
    parser.add_argument("--skip-postgres", action="store_true")
    run(parser.parse_args())


def run(args: argparse.Namespace) -> None:
    """Close a month over ``args.entries`` entries on SQLite (and PostgreSQL) and print the figures."""
    wiring.install()
    results = []
    with tempfile.TemporaryDirectory(prefix="lianjie-bench-") as tmp:
        results.append(run_one("sqlite", f"sqlite:///{Path(tmp) / 'settlement.db'}", args))
        if not args.skip_postgres:
            with postgres.fresh_database("lianjie_bench_settlement", args.postgres_url) as url:
                results.append(run_one("postgresql", url, args))
    print(f"{'database':<11} {'load s':>7} {'close s':>8} {'recompute s':>12} {'GROUP BY s':>11} "
          f"{'close/GROUP BY':>15}")
    for r in results:
        print(f"{r['database']:<11} {r['load_s']:>7.1f} {r['close_s']:>8.2f} {r['recompute_s']:>12.2f} "
              f"{r['baseline_s']:>11.2f} {r['close_s'] / r['baseline_s']:>15.2f}")
    print(f"({args.entries:,} entries booked in the month, {args.merchants} merchants, {args.cards:,} cards; "
          f"closing expired {results[0]['expired_lots']:,} lapsed lots and stored {results[0]['lines']} lines; "
          "baseline = SELECT tenant_id, kind, sum(points) GROUP BY over the same rows)")


if __name__ == "__main__":
    main()
