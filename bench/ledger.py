"""Benchmark: points-ledger operations/s with concurrent clients, next to a single-row UPDATE loop.

For each database (SQLite, and PostgreSQL when a server can be started or --postgres-url is given):
migrates a fresh database, creates a merchant and --customers customers with an opening balance,
then runs --clients threads, each like a till with its own connection, doing ledger operations on
random customers in their own transactions: earn, spend, and spend as a hold then confirm (an
operation each). The threads are spread over --processes processes, as requests are over the
server's worker processes (`lianjie serve --workers 2` on this 2-core machine). As the same-run
baseline the same threads run ``UPDATE … SET n = n + 1 WHERE id = ?`` on a plain table of as many
rows, one transaction per statement, through the same kind of engine; the two loops take turns
(--rounds), so that load from elsewhere on the machine falls on both.

    python bench/ledger.py [--ops 4000] [--rounds 3] [--clients 16] [--processes 2] [--customers 1000]
                           [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.progress import Progress  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from lianjie import migrate, wiring  # noqa: E402
from lianjie.db import create_db_engine, make_session_factory, transaction, writer_turn  # noqa: E402
from lianjie.identity.models import Profile  # noqa: E402
from lianjie.loyalty import ledger, programme  # noqa: E402
from lianjie.tenants import service as tenants  # noqa: E402
from lianjie.tenants.schemas import MerchantCreate  # noqa: E402
from tests import postgres  # noqa: E402


def setup(factory: sessionmaker[Session], customers: int) -> tuple[int, list[int]]:
    with transaction(factory, write=True) as session:
        merchant, _ = tenants.create_merchant(session, MerchantCreate(slug="bench", name="压测商户"))
        programme.save(session, merchant.id, {"pending_days": 0})
        profiles = [Profile(tenant_id=merchant.id, traits={}, event_count=0) for _ in range(customers)]
        session.add_all(profiles)
        session.flush()
        ids = [p.id for p in profiles]
        for profile_id in ids:
            ledger.earn(session, merchant.id, profile_id, f"opening-{profile_id}", points=100_000)
        return merchant.id, ids


Maker = Callable[[Engine, "sessionmaker[Session]", int, list[Any]], Callable[[random.Random, int], None]]


def _client_process(make_work: Maker, url: str, tenant_id: int, ids: list[Any], threads: int, ops: int, first: int,
                    barrier: Any, done: Any, results: Any) -> None:
    """One client process: ``threads`` threads sharing ``ops`` operations, numbered from ``first``."""
    wiring.install()
    engine = create_db_engine(url, pool_size=threads)
    factory = make_session_factory(engine)
    work = make_work(engine, factory, tenant_id, ids)
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(first, first + ops))

    def client(n: int) -> None:
        rng = random.Random(first + n)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            started = time.perf_counter()
            work(rng, i)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
            with done.get_lock():
                done.value += 1

    pool = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    barrier.wait()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    engine.dispose()
    results.put(latencies)


def run_clients(make_work: Maker, url: str, tenant_id: int, ids: list[Any], args: argparse.Namespace,
                progress: Progress, label: str, first: int = 0) -> tuple[float, list[float]]:
    """``args.ops`` operations (numbered from ``first``) from ``args.clients`` threads spread over
    ``args.processes`` processes (like the server's worker processes); returns the seconds from the
    start signal to the last operation, and every operation's latency."""
    context = multiprocessing.get_context("spawn")
    barrier, done, results = context.Barrier(args.processes + 1), context.Value("i", 0), context.Queue()
    shares = [args.ops // args.processes + (p < args.ops % args.processes) for p in range(args.processes)]
    threads = [args.clients // args.processes + (p < args.clients % args.processes) for p in range(args.processes)]
    workers = [context.Process(target=_client_process, args=(make_work, url, tenant_id, ids, threads[p], shares[p],
                                                             first + sum(shares[:p]), barrier, done, results))
               for p in range(args.processes)]
    for worker in workers:
        worker.start()
    task = progress.add_task(label, total=args.ops)
    barrier.wait()
    started = time.perf_counter()
    while done.value < args.ops:
        progress.update(task, completed=done.value)
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    progress.update(task, completed=args.ops)
    latencies = [lat for _ in workers for lat in results.get()]
    for worker in workers:
        worker.join()
    return seconds, latencies


def ledger_work(factory: sessionmaker[Session], tenant_id: int, ids: list[int], run: str) -> Callable[..., None]:
    def work(rng: random.Random, i: int) -> None:
        profile_id = rng.choice(ids)
        roll = rng.random()
        with writer_turn(factory), transaction(factory, write=True) as session:  # as the API's entry point does
            if roll < 0.45:
                ledger.earn(session, tenant_id, profile_id, f"{run}-{i}", points=rng.randint(1, 500))
            elif roll < 0.85:
                ledger.spend(session, tenant_id, profile_id, f"{run}-{i}", rng.randint(1, 300))
            else:
                hold = ledger.spend(session, tenant_id, profile_id, f"{run}-{i}", rng.randint(1, 300), hold=True)
                ledger.confirm_hold(session, tenant_id, hold.operation_id)
    return work


def ledger_maker(engine: Engine, factory: sessionmaker[Session], tenant_id: int, ids: list[Any]) -> Callable[..., None]:
    return ledger_work(factory, tenant_id, ids, "b")


def update_maker(engine: Engine, factory: sessionmaker[Session], tenant_id: int, ids: list[Any]) -> Callable[..., None]:
    return update_work(engine, len(ids))


def create_counters(engine: Engine, rows: int) -> None:
    """The baseline's plain table: ``rows`` counters."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE bench_counters (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)"))
        conn.execute(text("INSERT INTO bench_counters (id, n) VALUES (:id, 0)"),
                     [{"id": i} for i in range(1, rows + 1)])


def percentile(values: list[float], q: int) -> float:
    """The ``q``-th percentile of latencies in seconds, in milliseconds."""
    return statistics.quantiles(values, n=100)[q - 1] * 1000


def update_work(engine: Engine, rows: int) -> Callable[..., None]:
    statement = text("UPDATE bench_counters SET n = n + 1 WHERE id = :id")

    def work(rng: random.Random, i: int) -> None:
        with engine.begin() as conn:
            conn.execute(statement, {"id": rng.randint(1, rows)})
    return work


def run_one(label: str, url: str, args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    engine = create_db_engine(url)
    migrate.upgrade_engine(engine)
    factory = make_session_factory(engine)
    tenant_id, ids = setup(factory, args.customers)
    create_counters(engine, args.customers)
    engine.dispose()
    # The two loops take turns, --rounds times, so that a burst of load from elsewhere on the machine
    # falls on both rather than on whichever ran at the time.
    base: tuple[float, list[float]] = (0.0, [])
    run: tuple[float, list[float]] = (0.0, [])
    share = argparse.Namespace(**vars(args) | {"ops": args.ops // args.rounds})
    for n in range(args.rounds):
        s, lat = run_clients(update_maker, url, tenant_id, ids, share, progress, f"{label}: UPDATE loop {n + 1}")
        base = (base[0] + s, base[1] + lat)
        s, lat = run_clients(ledger_maker, url, tenant_id, ids, share, progress, f"{label}: ledger {n + 1}",
                             first=n * share.ops)
        run = (run[0] + s, run[1] + lat)
    return figures(label, share.ops * args.rounds, run, base)


def figures(label: str, ops: int, run: tuple[float, list[float]], baseline: tuple[float, list[float]]
            ) -> dict[str, Any]:
    """One table row: ``ops`` operations took ``run`` (seconds, latencies), the baseline ``baseline``."""
    return {"database": label, "ops_per_s": ops / run[0], "p50_ms": percentile(run[1], 50),
            "p99_ms": percentile(run[1], 99), "update_per_s": ops / baseline[0],
            "update_p50_ms": percentile(baseline[1], 50), "ratio": baseline[0] / run[0]}


def run_bench(doc: str | None, name: str, column: str, run_one: Callable[..., dict[str, Any]],
              note: Callable[[argparse.Namespace], str],
              more_options: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """Parse the common options (and ``more_options``), run ``run_one`` on SQLite and PostgreSQL, print
    the table and ``note``; returns the options."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if more_options is not None:
        more_options(parser)
    parser.add_argument("--ops", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2,
                        help="client processes the threads are spread over (as the server's --workers)")
    parser.add_argument("--postgres-url", help="an existing server; default: start a throwaway one")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    wiring.install()
    results = []
    with tempfile.TemporaryDirectory(prefix="lianjie-bench-") as tmp, Progress() as progress:
        if not args.skip_sqlite:
            results.append(run_one("sqlite", f"sqlite:///{Path(tmp) / name}.db", args, progress))
        if not args.skip_postgres:
            with postgres.fresh_database(f"lianjie_bench_{name}", args.postgres_url) as url:
                results.append(run_one("postgresql", url, args, progress))
    width = len(column)
    print(f"{'database':<11} {column:>{width}} {'p50 ms':>7} {'p99 ms':>7} {'UPDATE/s':>9} {'p50 ms':>7} {'ratio':>6}")
    for r in results:
        print(f"{r['database']:<11} {r['ops_per_s']:>{width},.0f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} "
              f"{r['update_per_s']:>9,.0f} {r['update_p50_ms']:>7.1f} {r['ratio']:>6.2f}")
    print(note(args))
    return args


def main() -> None:
    def rounds(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--rounds", type=int, default=3, help="turns the UPDATE loop and the ledger take")

    run_bench(__doc__, "ledger", "ledger ops/s", run_one, more_options=rounds, note=lambda args: (
        f"({args.clients} client threads in {args.processes} processes, each operation its own transaction "
        f"on {args.customers} customers: 45% earn, 40% spend, 15% hold then confirm; baseline = single-row "
        f"UPDATE per transaction; the two took {args.rounds} turns each)"))


if __name__ == "__main__":
    main()
