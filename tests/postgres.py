"""A throwaway PostgreSQL server for the test suite: initdb in a temp dir, started on a free port.

Runs the server binaries Debian's ``postgresql`` package installs (found on PATH or under
/usr/lib/postgresql/*/bin). PostgreSQL refuses to run as root, so as root the server runs as the
``postgres`` user the package creates. ``LIANJIE_TEST_POSTGRES_URL`` points the suite at an existing
server instead.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from lianjie.db import create_db_engine


class PostgresUnavailable(RuntimeError):
    pass


@dataclass
class ThrowawayPostgres:
    url: str
    root: Path | None
    pg_ctl: str | None
    run_as: list[str]

    def stop(self) -> None:
        if self.root is None or self.pg_ctl is None:
            return
        subprocess.run([*self.run_as, self.pg_ctl, "-D", str(self.root / "data"), "-m", "immediate", "stop"],
                       capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def find_bindir() -> Path:
    on_path = shutil.which("pg_ctl")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name)
                      if p.parent.name.isdigit() else 0, reverse=True)
    for bindir in [*candidates, *versions]:
        if (bindir / "pg_ctl").exists() and (bindir / "initdb").exists():
            return bindir
    raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found; "
                              "install Debian's 'postgresql' package or set LIANJIE_TEST_POSTGRES_URL")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start() -> ThrowawayPostgres:
    existing = os.environ.get("LIANJIE_TEST_POSTGRES_URL")
    if existing:
        return ThrowawayPostgres(url=existing, root=None, pg_ctl=None, run_as=[])
    bindir = find_bindir()
    root = Path(tempfile.mkdtemp(prefix="lianjie-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise PostgresUnavailable("running as root and there is no 'postgres' user to run the server") from exc
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()

    def run(*args: str) -> None:
        result = subprocess.run([*run_as, *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
            raise PostgresUnavailable(f"{args[0]} failed: {result.stderr or result.stdout}\n{log}")

    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale")
    options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "start")
    return ThrowawayPostgres(url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", root=root,
                             pg_ctl=str(bindir / "pg_ctl"), run_as=run_as)


@contextmanager
def server_url(given: str | None = None) -> Iterator[str]:
    """``given``, or the URL of a throwaway server started for the duration (benchmarks use this)."""
    if given:
        yield given
        return
    server = start()
    try:
        yield server.url
    finally:
        server.stop()


@contextmanager
def fresh_database(name: str, server: str | None = None) -> Iterator[str]:
    """The URL of a new, empty database ``name`` on the server at ``server``, or on a throwaway server
    started for the duration."""
    with server_url(server) as base:
        admin = create_db_engine(base)
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        yield base.rsplit("/", 1)[0] + "/" + name
