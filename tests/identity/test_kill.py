"""Kill test: SIGKILL the server in the middle of a load; nothing acknowledged is lost, nothing doubles."""

from __future__ import annotations

import base64
import http.client
import json
import signal
import threading
import time
from pathlib import Path

from sqlalchemy import func, select

from lianjie.db import create_db_engine
from lianjie.identity.models import Event
from tests.processes import Cli, start_server

BATCHES, SIZE = 60, 100


def _batches() -> list[tuple[list[str], bytes]]:
    out = []
    for b in range(BATCHES):
        messages: list[dict[str, object]] = [{"type": "identify" if i % 10 == 0 else "track", "event": "Product Viewed",
                     "messageId": f"kill-{b}-{i}", "anonymousId": f"dev-{(b * SIZE + i) % 700}",
                     "userId": f"U{(b * SIZE + i) % 300}" if i % 3 == 0 else None,
                     "traits": {"phone": f"139{(b * SIZE + i) % 300:08d}"}} for i in range(SIZE)]
        out.append(([str(m["messageId"]) for m in messages], json.dumps({"batch": messages}).encode()))
    return out


def _send(base: str, key: str, batches: list[tuple[list[str], bytes]], acked: list[str], stop: threading.Event,
          lock: threading.Lock, retry_busy: bool = False) -> None:
    host, port = base.removeprefix("http://").split(":")
    auth = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode(),
            "Content-Type": "application/json"}
    for ids, body in batches:
        if stop.is_set():
            return
        for _ in range(10 if retry_busy else 1):
            try:
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                conn.request("POST", "/v1/batch", body, auth)
                response = conn.getresponse()
                response.read()
            except OSError:
                return  # the server died under us: this batch was not acknowledged
            if response.status != 503:
                break
            time.sleep(float(response.getheader("Retry-After") or 1))  # busy: an SDK retries later
        if response.status == 200:
            with lock:
                acked.extend(ids)


def test_sigkill_during_a_load_loses_no_acknowledged_message(tmp_path: Path, database_url: str | None) -> None:
    cli = Cli(tmp_path, database_url)
    cli.run("db", "upgrade")
    cli.json("tenant", "create", "--slug", "huamei", "--name", "华美生活")
    key = cli.json("apikey", "create", "-t", "huamei", "--kind", "write", "--source", "web")["key"]
    batches = _batches()
    process, base = start_server(cli)
    acked: list[str] = []
    lock, stop = threading.Lock(), threading.Event()
    senders = [threading.Thread(target=_send, args=(base, key, batches[n::2], acked, stop, lock)) for n in range(2)]
    for sender in senders:
        sender.start()
    deadline = time.monotonic() + 60
    while len(acked) < BATCHES * SIZE // 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # mid-load: batches are in flight
    process.wait()
    stop.set()
    for sender in senders:
        sender.join()
    assert 0 < len(acked) < BATCHES * SIZE, ("the kill should land in the middle of the load",
                                             (tmp_path / "server.log").read_text()[-3000:])

    engine = create_db_engine(database_url or f"sqlite:///{tmp_path / 'var' / 'lianjie.db'}")
    with engine.connect() as conn:
        stored = set(conn.scalars(select(Event.message_id)))
    assert set(acked) <= stored

    process, base = start_server(cli)
    try:
        acked_again: list[str] = []
        _send(base, key, batches, acked_again, threading.Event(), threading.Lock(), retry_busy=True)
        assert len(acked_again) == BATCHES * SIZE, (tmp_path / "server.log").read_text()[-3000:]
    finally:
        process.terminate()
        process.wait(timeout=15)
    with engine.connect() as conn:
        total = conn.scalar(select(func.count()).select_from(Event))
        distinct = conn.scalar(select(func.count(func.distinct(Event.message_id))))
    engine.dispose()
    assert total == distinct == BATCHES * SIZE
