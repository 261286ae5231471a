"""KPI readers while the warehouse syncs: a real server (``--workers`` processes) answers the overview
page from client threads, first with the warehouse quiet, then while `lianjie warehouse sync` runs
again and again in another process; prints the answers' status codes and latency (p50, p99) of both
phases, and what each sync took (the writer's copy of the file included, warehouse/duckdb_file.py).

``python bench/warehouse_readers.py DIR [--reads 400] [--threads 4] [--workers 2]`` with ``DIR`` a
working directory whose ``var/`` holds a loaded world and a synced warehouse (``lianjie demo load``
then ``lianjie warehouse sync``, run in DIR). The server runs without its own jobs. Reads alternate
between the overview page and a segment preview (``POST /api/v1/segments/preview``), the two readers
the issue saw fail. To measure other code on the same world, put its ``src`` first on ``PYTHONPATH``
(the CLI and the server are child processes of this one and inherit it).

Measured on the small demo world (5k customers, a 25 MB warehouse), SQLite, 400 reads from 4 threads,
on the 2-core machine shared with others (load average 4-9, so latencies are loose), 2026-12-07:
before (every request opened the file read-write), 2 workers: 203 of 400 reads a 500 with the
warehouse quiet (the workers locked each other out), 208 during syncs, and 2 of 3 syncs failed on
the server's lock; 1 worker: 0 quiet, 16 of 400 a 500 during syncs, 4 of 5 syncs failed. After
(readers attach the published file read-only, writers publish a copy), 2 workers: every read a 200,
p50 0.71 s / p99 1.67 s quiet and 1.19 s / 2.40 s during syncs (the sync takes CPU from the two
cores), 3 syncs of 9-25 s, none failed; 1 worker: 0.48 s / 1.40 s and 0.97 s / 1.99 s, all 200.
Opening a request's connection costs the same either way (about 0.1 s with a count on the medium
world's 216 MB file). Readers retrying on the lock instead would have waited for whole syncs (5-25 s
here), which is why they read the published file instead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.processes import Cli, http_get, http_post, server  # noqa: E402

Read = tuple[str, Callable[[], tuple[int, bytes]]]



def _phase(reads: list[Read], count: int, threads: int) -> tuple[Counter[str], list[float]]:
    """``count`` reads, taking the kinds in turn; the outcomes as ``kind status`` and the seconds of each."""
    outcomes: Counter[str] = Counter()
    seconds: list[float] = []

    def one(n: int) -> None:
        name, call = reads[n % len(reads)]
        start = time.perf_counter()
        status, _body = call()
        seconds.append(time.perf_counter() - start)
        outcomes[f"{name} {status}"] += 1

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    return outcomes, seconds


def _summary(name: str, outcomes: Counter[str], seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"{name}: {sum(outcomes.values())} reads, {dict(sorted(outcomes.items()))}, p50 "
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
        overview = f"{base}/api/v1/analytics/overview?from=2025-11-01&to=2026-10-31"
        preview = f"{base}/api/v1/segments/preview"
        reads: list[Read] = [
            ("overview", lambda: http_get(overview, admin)),
            ("preview", lambda: http_post(preview, {"rule": {"purchased": {}}, "sample": 3}, admin)),
        ]
        print(_summary("quiet", *_phase(reads, args.reads, args.threads)))
        done, syncs, failed = threading.Event(), [], []

        def keep_syncing() -> None:
            while not done.is_set():
                run = cli.run("warehouse", "sync", "--json", ok=False)
                if run.returncode == 0:
                    syncs.append(json.loads(run.stdout)["seconds"])
                else:
                    failed.append((run.stderr.strip().splitlines() or ["(no output)"])[-1][:200])

        syncer = threading.Thread(target=keep_syncing)
        syncer.start()
        try:
            result = _phase(reads, args.reads, args.threads)
        finally:
            done.set()
            syncer.join()
        print(_summary("during syncs", *result))
        print(f"syncs: {len(syncs)}, seconds each: {', '.join(f'{s:.2f}' for s in syncs)}; failed: {len(failed)}")
        for reason in dict.fromkeys(failed):
            print(f"  a sync failed: {reason}")


if __name__ == "__main__":
    main()
