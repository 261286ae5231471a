"""Readers keep answering while the warehouse syncs: a real server (two worker processes) answers KPI
pages and segment previews from several client threads while `lianjie warehouse sync` runs again and
again in another process, on SQLite and PostgreSQL. Every answer is a 200 with the figures of the
last completed sync; an order recorded afterwards shows after the next sync."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.processes import Cli, http_get, http_post, server

READS = 100
THREADS = 4
SYNCS = 2



def _figures(body: bytes) -> dict[str, Any]:
    """An answer without the moment it was computed at (a preview's ``as_of`` is the request's time)."""
    answer: dict[str, Any] = json.loads(body)
    answer.pop("as_of", None)
    return answer


def test_kpis_and_previews_answer_during_syncs_from_another_process(tmp_path: Path,
                                                                     database_url: str | None) -> None:
    cli = Cli(tmp_path, database_url)
    cli.run("db", "upgrade")
    merchant = cli.json("demo", "load", "--scale", "tiny")["merchants"][0]
    slug = merchant["slug"]
    keys = json.loads((tmp_path / "var" / "demo-keys.json").read_text())[slug]
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    cli.run("warehouse", "sync")
    cli.env |= {"LIANJIE_WORKERS": "2", "LIANJIE_JOBS_ENABLED": "false", "LIANJIE_PIN_WORKERS": "false"}
    with server(cli) as base:
        overview = f"{base}/api/v1/analytics/overview?from=2025-11-01&to=2026-10-31"
        reads: list[tuple[str, Callable[[], tuple[int, bytes]]]] = [
            ("overview", lambda: http_get(overview, admin)),
            ("by store", lambda: http_get(f"{base}/api/v1/analytics/breakdown?from=2025-11-01&to=2026-10-31"
                                          "&by=store", admin)),
            ("preview", lambda: http_post(f"{base}/api/v1/segments/preview",
                                      {"rule": {"purchased": {}}, "sample": 3}, admin)),
        ]
        expected = {}
        for name, call in reads:
            status, body = call()
            assert status == 200, (name, body[:300])
            expected[name] = _figures(body)

        syncs: list[int] = []
        done = threading.Event()

        def keep_syncing() -> None:
            while not done.is_set() or len(syncs) < SYNCS:
                syncs.append(cli.run("warehouse", "sync", ok=False).returncode)

        answers: Counter[tuple[str, int, bool]] = Counter()

        def one_read(n: int) -> None:
            name, call = reads[n % len(reads)]
            status, body = call()
            answers[(name, status, status == 200 and _figures(body) == expected[name])] += 1

        syncer = threading.Thread(target=keep_syncing)
        syncer.start()
        try:
            with ThreadPoolExecutor(THREADS) as pool:
                n = 0
                while n < READS or len(syncs) < SYNCS:
                    list(pool.map(one_read, range(n, n + THREADS * 5)))
                    n += THREADS * 5
        finally:
            done.set()
            syncer.join()
        outcomes = {(name, status, same) for name, status, same in answers}
        assert outcomes == {(name, 200, True) for name, _ in reads}, (answers, syncs)
        assert len(syncs) >= SYNCS
        assert set(syncs) == {0}, syncs

        # Newer data shows once a sync has completed.
        status, body = http_post(f"{base}/api/v1/orders", {
            "order_no": "LATE-1", "ordered_at": "2026-06-01T12:00:00+08:00", "channel": "offline",
            "lines": [{"sku": "YJ100053", "quantity": 1, "unit_price_fen": 12345}]}, admin)
        assert status == 201, body[:300]
        assert _figures(http_get(overview, admin)[1]) == expected["overview"]
        cli.run("warehouse", "sync")
        after = json.loads(http_get(overview, admin)[1])["current"]
        before = expected["overview"]["current"]
        assert (after["orders"], after["gross_fen"]) == (before["orders"] + 1, before["gross_fen"] + 12345)
