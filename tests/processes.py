"""Driving lianjie as separate processes: the CLI, and a real server on a real port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(database_url: str | None = None) -> dict[str, str]:
    """The environment without the suite's own LIANJIE_* settings (so ./var of the cwd is used)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIANJIE_")}
    if database_url:
        env["LIANJIE_DATABASE_URL"] = database_url
    return env


class Cli:
    def __init__(self, cwd: Path, database_url: str | None) -> None:
        self.cwd = cwd
        self.env = clean_env(database_url)

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "lianjie", *args], cwd=self.cwd, env=self.env,
                                capture_output=True, text=True, timeout=300, check=False)
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    def json(self, *args: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.run(*args, "--json").stdout)
        return out


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_post(url: str, body: Any, headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, bytes]:
    """POST ``body`` as JSON; the status and body, error statuses included."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers=(headers or {}) | {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def start_server(cli: Cli, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``lianjie serve`` and wait until /healthz answers and every worker process has started."""
    port = port or free_port()
    log_path = cli.cwd / "server.log"
    log_start = log_path.stat().st_size if log_path.exists() else 0
    log = log_path.open("ab")  # a file, not a pipe: a chatty server must never block
    process = subprocess.Popen([sys.executable, "-m", "lianjie", "serve", "--port", str(port)], cwd=cli.cwd,
                               env=cli.env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    base = f"http://127.0.0.1:{port}"
    # Generous: spawned workers import the whole app, which takes long on a machine shared with others.
    deadline = time.monotonic() + 180
    workers = int(cli.env.get("LIANJIE_WORKERS", "1"))
    while True:
        try:
            if http_get(base + "/healthz")[0] == 200 and _started(log_path, log_start) >= workers:
                return process, base
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            raise RuntimeError(f"server did not start: {(cli.cwd / 'server.log').read_text()[-3000:]}")
        time.sleep(0.2)


def _started(log: Path, start: int) -> int:
    """How many server processes have finished starting (uvicorn logs each one).

    /healthz answers as soon as the first worker of ``--workers N`` listens; the clients connected
    before the others start stay with it, and a benchmark would measure one process.
    """
    with log.open("rb") as file:
        file.seek(start)
        return file.read().count(b"Application startup complete")


@contextmanager
def server(cli: Cli) -> Iterator[str]:
    """``lianjie serve`` on a free port; yields its base URL and stops it afterwards."""
    process, base = start_server(cli)
    try:
        yield base
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM first: uvicorn then stops its worker processes; SIGKILL would leave them running."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
