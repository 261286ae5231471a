"""Keep-alive connections spread over the processes of `lianjie serve --workers 2` (lianjie.httpserver)."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from lianjie.httpserver import ConnectionShares
from tests.processes import Cli, _stop, start_server

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists() or not hasattr(os, "fork"),
                                reason="connections are traced to processes through Linux's /proc")


def test_a_process_two_connections_ahead_sheds_one_at_a_time(tmp_path: Path) -> None:
    first, second = ConnectionShares(tmp_path, 2), ConnectionShares(tmp_path, 2)
    assert {first.slot, second.slot} == {0, 1}
    for _ in range(3):
        first.opened()
    second.opened()
    a, b = object(), object()
    assert not second.should_shed(b)  # behind, not ahead
    assert first.should_shed(a)  # 3 against 1
    assert not first.should_shed(b)  # one connection at a time
    first.closed(a)
    assert sorted(first.counts()) == [1, 2]
    assert not first.should_shed(b)  # 2 against 1: as even as 3 connections get
    first.opened()
    first.opened()
    assert first.should_shed(b)  # 4 against 1: the next one, now the first has closed
    with pytest.raises(OSError, match="all 2 connection slots"):
        ConnectionShares(tmp_path, 2)


def test_a_process_started_in_place_of_a_dead_one_takes_its_slot_from_zero(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from lianjie.httpserver import ConnectionShares
        shares = ConnectionShares(Path(sys.argv[1]), 2)
        for _ in range(5):
            shares.opened()
        print(shares.slot, flush=True)
    """)
    dead = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True)
    successor = ConnectionShares(tmp_path, 2)  # the dead process's lock went with it
    assert successor.slot == int(dead.stdout)
    assert successor.counts() == [0, 0]


def _worker_pids(server_pid: int) -> list[int]:
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    return [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _owner(conn: http.client.HTTPConnection, workers: list[int]) -> int:
    """The server process holding the other end of ``conn`` (waiting for it to accept the connection)."""
    assert conn.sock is not None
    client_port, server_port = conn.sock.getsockname()[1], conn.sock.getpeername()[1]
    deadline = time.monotonic() + 30
    while True:
        inode = None
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == server_port and int(fields[2].split(":")[1], 16) == client_port:
                inode = fields[9]
        owners = [pid for pid in workers if inode in _socket_inodes(pid)]
        if len(owners) == 1:
            return owners[0]
        assert time.monotonic() < deadline, f"no server process holds the connection from port {client_port}"
        time.sleep(0.01)


def _get(conn: http.client.HTTPConnection) -> str | None:
    """GET /healthz on ``conn`` (opened again if the server closed it); the Connection header."""
    conn.request("GET", "/healthz")
    response = conn.getresponse()
    response.read()
    assert response.status == 200
    return response.getheader("connection")


def _four_on_one_process(host: str, port: int, workers: list[int]) -> tuple[int, list[http.client.HTTPConnection]]:
    """Open connections (no request yet) until one process holds four; the others are closed."""
    kept: dict[int, list[http.client.HTTPConnection]] = {pid: [] for pid in workers}
    while all(len(conns) < 4 for conns in kept.values()):
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.connect()
        kept[_owner(conn, workers)].append(conn)
    crowded = next(pid for pid, conns in kept.items() if len(conns) == 4)
    for pid, conns in kept.items():
        if pid != crowded:
            for conn in conns:
                conn.close()
    return crowded, kept[crowded]


@pytest.mark.parametrize("balanced", [True, False], ids=["balanced", "unbalanced"])
def test_four_connections_on_one_process_end_up_two_and_two(tmp_path: Path, balanced: bool) -> None:
    cli = Cli(tmp_path, None)
    cli.env |= {"LIANJIE_WORKERS": "2", "LIANJIE_JOBS_ENABLED": "false",
                "LIANJIE_BALANCE_CONNECTIONS": str(balanced).lower()}
    cli.run("db", "upgrade")
    process, base = start_server(cli)
    host, port = base.removeprefix("http://").split(":")
    try:
        workers = _worker_pids(process.pid)
        assert len(workers) == 2, workers
        crowded, conns = _four_on_one_process(host, int(port), workers)
        closes, rounds = 0, 0
        # Every client keeps sending, as SDKs do, until a whole round is answered without a close
        # (then every connection is open again), or for 50 rounds.
        while rounds < 50:
            rounds += 1
            answers = [_get(conn) for conn in conns]
            closes += answers.count("close")
            if "close" not in answers:
                break
        split = Counter(_owner(conn, workers) for conn in conns)
    finally:
        _stop(process)
    if balanced:
        assert sorted(split.values()) == [2, 2], (split, rounds)
        assert closes >= 2  # at least two connections moved
    else:
        assert split == {crowded: 4}
        assert closes == 0
