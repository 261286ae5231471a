"""Operators keep working while events stream in: no 5xx from lock contention, no lost merges."""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from tests.processes import Cli, server


def _post(url: str, body: Mapping[str, object], headers: dict[str, str], method: str = "POST") -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method=method,
                                     headers=headers | {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_admin_writes_during_ingestion(tmp_path: Path, database_url: str | None) -> None:
    cli = Cli(tmp_path, database_url)
    cli.env["LIANJIE_WORKERS"] = "2"
    cli.run("db", "upgrade")
    cli.json("tenant", "create", "--slug", "huamei", "--name", "华美生活")
    write = cli.json("apikey", "create", "-t", "huamei", "--kind", "write", "--source", "web")["key"]
    admin = cli.json("apikey", "create", "-t", "huamei", "--kind", "admin", "--scope", "*")["key"]
    basic = {"Authorization": "Basic " + base64.b64encode(f"{write}:".encode()).decode()}
    bearer = {"Authorization": f"Bearer {admin}"}
    statuses: list[int] = []
    with server(cli) as base:
        def ingest(offset: int) -> None:
            for b in range(15):
                batch = [{"type": "identify", "messageId": f"c-{offset}-{b}-{i}", "anonymousId": f"d-{b}-{i}",
                          "userId": f"U{i % 40}", "traits": {"city": "上海"}} for i in range(100)]
                statuses.append(_post(base + "/v1/batch", {"batch": batch}, basic))

        def administer() -> None:
            for n in range(20):
                store = {"code": f"S{n}", "name": f"店{n}", "city": "上海", "province": "上海", "type": "mall"}
                statuses.append(_post(base + "/api/v1/stores", store, bearer))
                statuses.append(_post(base + f"/api/v1/stores/S{n}", {"name": f"新店{n}"}, bearer, "PATCH"))

        threads = [threading.Thread(target=ingest, args=(n,)) for n in range(2)]
        threads.append(threading.Thread(target=administer))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        request = urllib.request.Request(base + "/api/v1/profiles?limit=500", headers=bearer)
        with urllib.request.urlopen(request, timeout=30) as response:
            customers = json.loads(response.read())
    assert all(status < 300 for status in statuses), (sorted(set(statuses)),
                                                      (tmp_path / "server.log").read_text()[-4000:])
    assert len(statuses) == 2 * 15 + 40
    # Both loaders name the same 40 users with different devices: every device ends up with its user.
    assert customers["total"] == 40
