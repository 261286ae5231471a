"""Benchmark: events/s and batch latency through the real HTTP tracking API, identity resolution on.

For each database (SQLite, and PostgreSQL when a server can be started or --postgres-url is given):
starts `lianjie serve`, creates a merchant and a write key with the CLI, and posts the demo world's
events (rewritten with fresh messageIds) as 100-message `/v1/batch` requests from several client
threads over keep-alive connections. As the same-run baseline it inserts the same rows, already
serialised, straight into a plain table of the same database with one executemany per batch.

    python bench/ingest.py [--events N] [--clients 4] [--batch 100] [--runs 1] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import itertools
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Generator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from lianjie.db import create_db_engine  # noqa: E402
from lianjie.demo.generate import generate_world  # noqa: E402
from tests import postgres  # noqa: E402
from tests.processes import Cli, server  # noqa: E402


def load_messages(count: int | None, work: Path) -> list[dict[str, Any]]:
    """Real-looking traffic: the small demo world's events of its first merchant (37,471), in file
    order, with new messageIds; the first ``count`` of them if given."""
    world = work / "world"
    generate_world(world, scale="small", seed=42)
    run = uuid.uuid4().hex[:8]
    out: list[dict[str, Any]] = []
    slug = json.loads((world / "world.json").read_text())["merchants"][0]["slug"]
    files = sorted((world / "events" / slug).glob("*.ndjson"))
    for n, line in enumerate(itertools.chain.from_iterable(f.open(encoding="utf-8") for f in files)):
        if count is not None and len(out) >= count:
            break
        message = json.loads(line)
        message["messageId"] = f"{run}-{n}"
        out.append(message)
    return out


def send_all(base: str, key: str, batches: list[bytes], clients: int) -> tuple[float, list[float]]:
    host, port = base.removeprefix("http://").split(":")
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    latencies: list[float] = []
    lock = threading.Lock()
    queue = iter(batches)

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        while True:
            with lock:
                body = next(queue, None)
            if body is None:
                break
            if conn.sock is None:  # the first request, or the server closed the last connection
                conn.connect()
                # As urllib3 does for requests (the official Segment Python client's transport):
                # without TCP_NODELAY, http.client's separate send() of the body's last partial
                # segment waits for the server's delayed ACK (~40 ms a request), which measures
                # Nagle's algorithm, not the server.
                assert conn.sock is not None
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            started = time.perf_counter()
            conn.request("POST", "/v1/batch", body, {"Authorization": auth, "Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                raise RuntimeError(f"{response.status}: {payload[:300]!r}")
            with lock:
                latencies.append(time.perf_counter() - started)
        conn.close()

    failures: list[BaseException] = []

    def guarded() -> None:
        try:
            worker()
        except BaseException as exc:  # a thread's exception would otherwise only be printed
            failures.append(exc)

    threads = [threading.Thread(target=guarded) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} client thread(s) failed; the first: {failures[0]!r}")
    return time.perf_counter() - started, latencies


def resolved(url: str) -> dict[str, int]:
    """What identity resolution made of the events, to compare with other runs and other versions.

    Batches arrive in a slightly different order from run to run (several clients), and a few merges
    and conflicts depend on that order; with one client the figures repeat exactly.
    """
    engine = create_db_engine(url)
    queries = {"events": "SELECT count(*) FROM events WHERE profile_id IS NOT NULL",
               "profiles": "SELECT count(*) FROM profiles",
               "customers": "SELECT count(*) FROM profiles WHERE merged_into_id IS NULL",
               "identifiers": "SELECT count(*) FROM identifiers",
               "merges": "SELECT count(*) FROM profile_merges",
               "conflicts": "SELECT count(*) FROM identity_conflicts"}
    with engine.connect() as conn:
        counts = {name: int(conn.execute(text(sql)).scalar_one()) for name, sql in queries.items()}
    engine.dispose()
    return counts


def raw_insert_rate(url: str, messages: list[dict[str, Any]], batch: int) -> float:
    """Rows/s of inserting the same messages as plain rows, no validation, no identity."""
    engine = create_db_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_raw_events"))
        conn.execute(text("CREATE TABLE bench_raw_events (message_id VARCHAR(100) PRIMARY KEY, type VARCHAR(16),"
                          " user_id VARCHAR(200), anonymous_id VARCHAR(200), ts VARCHAR(40), payload TEXT)"))
    rows = [{"m": m["messageId"], "t": m["type"], "u": m.get("userId"), "a": m.get("anonymousId"),
             "ts": m.get("timestamp"), "p": json.dumps(m, ensure_ascii=False)} for m in messages]
    insert = text("INSERT INTO bench_raw_events VALUES (:m, :t, :u, :a, :ts, :p)")
    started = time.perf_counter()
    for start in range(0, len(rows), batch):
        with engine.begin() as conn:
            conn.execute(insert, rows[start:start + batch])
    seconds = time.perf_counter() - started
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE bench_raw_events"))
    engine.dispose()
    return len(rows) / seconds


def run_one(label: str, database_url: str | None, messages: list[dict[str, Any]], args: argparse.Namespace,
            work: Path) -> dict[str, Any]:
    """One measurement on a new database; the raw rate is measured just before and just after the
    load and averaged, as this machine's speed drifts within minutes."""
    cwd = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=work))
    cli = Cli(cwd, database_url)
    cli.env["LIANJIE_WORKERS"] = str(args.workers)
    cli.run("db", "upgrade")
    cli.json("tenant", "create", "--slug", "bench", "--name", "压测商户")
    key = cli.json("apikey", "create", "-t", "bench", "--kind", "write", "--source", "web")["key"]
    run = uuid.uuid4().hex[:8]
    messages = [m | {"messageId": f"{run}-{n}"} for n, m in enumerate(messages)]
    batches = [json.dumps({"batch": messages[i:i + args.batch]}, ensure_ascii=False).encode()
               for i in range(0, len(messages), args.batch)]
    url = database_url or f"sqlite:///{cwd / 'var' / 'lianjie.db'}"
    raw_before = raw_insert_rate(url, messages, args.batch)
    with server(cli) as base:
        seconds, latencies = send_all(base, key, batches, args.clients)
    raw = (raw_before + raw_insert_rate(url, messages, args.batch)) / 2
    graph = resolved(url)
    if graph["events"] != len(messages):
        raise RuntimeError(f"{len(messages)} events acknowledged but {graph['events']} stored with a profile")
    rate = len(messages) / seconds
    quantiles = statistics.quantiles(latencies, n=100)
    return {"database": label, "events": len(messages), "events_per_s": rate, "p50_ms": quantiles[49] * 1000,
            "p99_ms": quantiles[98] * 1000, "raw_rows_per_s": raw, "ratio": rate / raw, "graph": graph}


def measure(label: str, urls: Iterator[str | None], messages: list[dict[str, Any]], args: argparse.Namespace,
            work: Path) -> list[dict[str, Any]]:
    return [run_one(label, next(urls), messages, args, work) for _ in range(args.runs)]


def postgres_urls(server_url: str | None) -> Generator[str, None, None]:
    """A new database for each run, on ``server_url`` or on one throwaway server."""
    with ExitStack() as stack:
        base = stack.enter_context(postgres.server_url(server_url))
        for n in itertools.count():
            yield stack.enter_context(postgres.fresh_database(f"lianjie_bench_{n}", base))


def _print(results: list[dict[str, Any]]) -> None:
    print(f"{'database':<11} {'events':>7} {'events/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'raw rows/s':>11} {'ratio':>6}")
    for r in results:
        print(f"{r['database']:<11} {r['events']:>7} {r['events_per_s']:>9,.0f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f}"
              f" {r['raw_rows_per_s']:>11,.0f} {r['ratio']:>6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, help="send only the first N of the 37,471 events")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="server processes (LIANJIE_WORKERS)")
    parser.add_argument("--runs", type=int, default=1, help="measurements per database; the median is printed last")
    parser.add_argument("--postgres-url", help="an existing server; default: start a throwaway one")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lianjie-bench-") as tmp:
        work = Path(tmp)
        messages = load_messages(args.events, work)
        results = {"sqlite": measure("sqlite", itertools.repeat(None), messages, args, work)}
        if not args.skip_postgres:
            urls = postgres_urls(args.postgres_url)
            results["postgresql"] = measure("postgresql", urls, messages, args, work)
            urls.close()
    _print([r for runs in results.values() for r in runs])
    if args.runs > 1:
        print(f"median of {args.runs} runs (by events/s; each ratio is within its own run):")
        _print([sorted(runs, key=lambda r: r["events_per_s"])[len(runs) // 2] for runs in results.values()])
    for runs in results.values():
        r = runs[-1]
        print(f"{r['database']}: resolved " + ", ".join(f"{n:,} {name}" for name, n in r["graph"].items()))
    print(f"({args.batch}-message batches over HTTP, {args.clients} client threads, {args.workers} server "
          "processes, identity resolution on; raw = executemany of the same rows into a plain table)")


if __name__ == "__main__":
    main()
