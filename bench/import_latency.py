"""Benchmark: does the API keep answering on SQLite while `lianjie orders import` runs?

Builds one demo merchant (the small demo world's first: stores, staff, catalogue) in a SQLite file,
starts `lianjie serve` against it, and sends requests in a loop from a few client threads: a list of
recent orders, a product, and a small new order (`POST /api/v1/orders`, a write). First for a while
with nothing else running (the baseline), then while `lianjie orders import` stores the first
`--orders` orders of the merchant's generated till export in another process. Prints p50/p99/max
latency of those requests in both phases, per kind and together, and how long the import took.

    python bench/import_latency.py [--orders 3000] [--clients 2] [--baseline 20]
"""

from __future__ import annotations

import argparse
import csv
import http.client
import itertools
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lianjie.db import create_db_engine, make_session_factory, transaction  # noqa: E402
from lianjie.demo import load as demo_load  # noqa: E402
from lianjie.demo.generate import generate_world  # noqa: E402
from lianjie.migrate import upgrade_engine  # noqa: E402
from tests.processes import Cli, server  # noqa: E402

MAPPING = (ROOT / "src" / "lianjie" / "commerce" / "mappings" / "demo.toml").read_text(encoding="utf-8")


def build(work: Path, orders: int) -> dict[str, Any]:
    """The merchant in ``work/var/lianjie.db`` and its first ``orders`` orders in ``work/orders.csv``."""
    world_dir = work / "world"
    generate_world(world_dir, scale="small", seed=42)
    world = demo_load.read_world(world_dir)
    spec = world["merchants"][0]
    engine = create_db_engine(f"sqlite:///{work / 'var' / 'lianjie.db'}")
    upgrade_engine(engine)
    with transaction(make_session_factory(engine), write=True) as session:
        merchant = demo_load.load_merchant(session, spec)
        demo_load.load_catalogue(session, world_dir, world, merchant)
    engine.dispose()
    rows, kept = _first_orders(demo_load.order_files(world_dir, world, spec["slug"])[0], orders)
    with (work / "orders.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (work / "demo.toml").write_text(MAPPING + f'\n[buyer_constants]\nwechat_appid = '
                                    f'"{spec["wechat"]["miniprogram_appid"]}"\n', encoding="utf-8")
    sale = next(r for r in rows if r["order_type"] == "sale" and r["store_code"] != "ONLINE")
    return {"slug": spec["slug"], "admin": merchant.keys["admin"], "orders": kept, "rows": len(rows),
            "sku": sale["sku"], "store": sale["store_code"]}


def _first_orders(path: Path, count: int) -> tuple[list[dict[str, str]], int]:
    """Rows of the file's first ``count`` sales, and the returns of those sales."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen: set[str] = set()
    for row in rows:
        if row["order_type"] == "sale" and row["order_no"] not in chosen:
            if len(chosen) == count:
                break
            chosen.add(row["order_no"])
    return [r for r in rows if r["order_no"] in chosen or r["original_order_no"] in chosen], len(chosen)


class Client:
    """One keep-alive connection sending the loop's requests; latencies by kind."""

    def __init__(self, base: str, admin: str, setup: dict[str, Any], name: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=120)
        self.headers = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
        self.setup, self.name, self.n = setup, name, itertools.count()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> float:
        if self.conn.sock is None:
            self.conn.connect()
            assert self.conn.sock is not None
            self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = json.dumps(body).encode() if body is not None else None
        started = time.perf_counter()
        self.conn.request(method, path, data, self.headers)
        response = self.conn.getresponse()
        payload = response.read()
        took = time.perf_counter() - started
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {payload[:300]!r}")
        return took

    def requests(self) -> list[tuple[str, Callable[[], float]]]:
        s = self.setup

        def new_order() -> float:
            n = next(self.n)
            return self.call("POST", "/api/v1/orders", {
                "order_no": f"BENCH-{self.name}-{n}", "ordered_at": "2026-10-30T12:00:00+08:00",
                "store_code": s["store"], "channel": "offline", "buyer": {"member_no": f"BENCH{n % 50}"},
                "lines": [{"sku": s["sku"], "quantity": 1, "unit_price_fen": 1990}]})

        return [("GET /orders", lambda: self.call("GET", "/api/v1/orders?limit=20")),
                ("GET /products/{sku}", lambda: self.call("GET", f"/api/v1/products/{s['sku']}")),
                ("POST /orders", new_order)]


def loop(base: str, setup: dict[str, Any], clients: int, phase: str, until: Callable[[], bool]
         ) -> dict[str, list[float]]:
    """Requests from ``clients`` threads, one after another in each, until ``until()``; latencies by kind."""
    found: dict[str, list[float]] = {}
    lock = threading.Lock()
    failures: list[BaseException] = []

    def run(i: int) -> None:
        client = Client(base, setup["admin"], setup, f"{phase}{i}")
        try:
            for kind, send in itertools.cycle(client.requests()):
                if until():
                    break
                took = send()
                with lock:
                    found.setdefault(kind, []).append(took)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"a client failed: {failures[0]!r}")
    return found


def figures(latencies: list[float]) -> str:
    if len(latencies) < 2:
        return f"{len(latencies):>6}  (too few)"
    q = statistics.quantiles(latencies, n=100)
    return f"{len(latencies):>6} {q[49] * 1000:>8.1f} {q[98] * 1000:>8.1f} {max(latencies) * 1000:>8.1f}"


def report(phase: str, found: dict[str, list[float]]) -> None:
    for kind, values in sorted(found.items()):
        print(f"{phase:<16} {kind:<20} {figures(values)}")
    print(f"{phase:<16} {'all':<20} {figures([v for values in found.values() for v in values])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=3000, help="orders of the till export to import")
    parser.add_argument("--clients", type=int, default=2, help="client threads sending requests")
    parser.add_argument("--baseline", type=float, default=20, help="seconds of requests before the import")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lianjie-bench-import-") as tmp:
        work = Path(tmp)
        setup = build(work, args.orders)
        cli = Cli(work, None)
        cli.env["LIANJIE_JOBS_ENABLED"] = "false"  # nothing else in the server competes for the lock
        with server(cli) as base:
            deadline = time.monotonic() + args.baseline
            baseline = loop(base, setup, args.clients, "b", lambda: time.monotonic() > deadline)
            started = time.perf_counter()
            importer = subprocess.Popen(
                [sys.executable, "-m", "lianjie", "orders", "import", "orders.csv", "-t", setup["slug"],
                 "--mapping", "demo.toml", "--json"], cwd=work, env=cli.env, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True)
            during = loop(base, setup, args.clients, "i", lambda: importer.poll() is not None)
            out, _ = importer.communicate()
            took = time.perf_counter() - started
        if importer.returncode != 0:
            raise RuntimeError(f"the import failed ({importer.returncode}): {out[-2000:]}")
        summary = json.loads(out)
    print(f"{'phase':<16} {'request':<20} {'count':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    report("baseline", baseline)
    report("during import", during)
    print(f"import: {summary['orders_created']:,} orders ({summary['rows_read']:,} rows, "
          f"{summary['refunds_created']:,} refunds, {summary['rejected_rows']} rows rejected) in {took:.1f} s "
          f"({summary['rows_read'] / took:,.0f} rows/s), while {args.clients} clients sent requests; SQLite, "
          "1 server process")


if __name__ == "__main__":
    main()
