"""KPI readers while the warehouse syncs: a real server (``--workers`` processes) answers the overview
page from client threads, first with the warehouse quiet, then while `lianjie warehouse sync` runs
again and again in another process; prints the answers' status codes and latency (p50, p99) of both
phases, and what each sync took (the writer's copy of the file included, warehouse/duckdb_file.py).

``python bench/warehouse_readers.py DIR [--reads 400] [--threads 4] [--workers 2]`` with ``DIR`` a
working directory whose ``var/`` holds a loaded world and a synced warehouse (``lianjie demo load``
then ``lianjie warehouse sync``, run in DIR). The server runs without its own jobs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.processes import Cli, http_get, server  # noqa: E402


def _phase(url: str, headers: dict[str, str], reads: int, threads: int) -> tuple[Counter[int], list[float]]:
    statuses: Counter[int] = Counter()
    seconds: list[float] = []

    def one(_: int) -> None:
        start = time.perf_counter()
        status, _body = http_get(url, headers)
        seconds.append(time.perf_counter() - start)
        statuses[status] += 1

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(reads)))
    return statuses, seconds


def _summary(name: str, statuses: Counter[int], seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"{name}: {sum(statuses.values())} reads, statuses {dict(statuses)}, p50 "
            f"{statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--reads", type=int, default=400)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    cli = Cli(args.dir.resolve(), None)
    keys = json.loads((cli.cwd / "var" / "demo-keys.json").read_text())
    admin = {"Authorization": f"Bearer {next(iter(keys.values()))['admin']}"}
    cli.env |= {"LIANJIE_WORKERS": str(args.workers), "LIANJIE_JOBS_ENABLED": "false", "LIANJIE_PIN_WORKERS": "false"}
    with server(cli) as base:
        url = f"{base}/api/v1/analytics/overview?from=2025-11-01&to=2026-10-31"
        print(_summary("quiet", *_phase(url, admin, args.reads, args.threads)))
        done, syncs, failed = threading.Event(), [], []

        def keep_syncing() -> None:
            while not done.is_set():
                run = cli.run("warehouse", "sync", "--json", ok=False)
                if run.returncode == 0:
                    syncs.append(json.loads(run.stdout)["seconds"])
                else:
                    failed.append(run.stderr.strip().splitlines()[-1:])

        syncer = threading.Thread(target=keep_syncing)
        syncer.start()
        try:
            result = _phase(url, admin, args.reads, args.threads)
        finally:
            done.set()
            syncer.join()
        print(_summary("during syncs", *result))
        print(f"syncs: {len(syncs)}, seconds each: {', '.join(f'{s:.2f}' for s in syncs)}; failed: {len(failed)}")


if __name__ == "__main__":
    main()
