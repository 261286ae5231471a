"""The DuckDB warehouse file, shared by many processes: readers never wait for a writer.

DuckDB lets one process open a file read-write, and then no other process may open it at all; within
a process a read-write and a read-only connection to one file refuse each other too. The server's
workers read the warehouse for every KPI page and segment preview while the sync job (another
process, or a thread of the server), ``lianjie warehouse sync`` and segment snapshots write it, so
readers failed with a 500 whenever a write was under way (13 of 150 requests during a sync).

So writers never touch the file readers read. A write (:func:`write`) takes the writers' lock (a
``flock`` on ``<file>.lock``: writers take turns, across processes and threads), copies the published
file to a private one beside it, writes that, checkpoints and closes it, and renames it over the
published file: one atomic step, so a reader sees the warehouse as of a completed write, never half
a sync, and a write that fails publishes nothing. A reader (:func:`open_read_only`) attaches the
published file read-only to a fresh in-memory DuckDB; it keeps the version it attached for as long
as it is open (the renamed-over file lives on until its last reader closes it), and the next reader
gets the new one.

What it costs is one copy of the file per write (measured on the medium demo world's 216 MB
warehouse: 0.17-0.48 s with the fsync, against the sync's own seconds of reading the store) and
twice the file's size on disk during a write. A write that erased someone publishes a compacted
file instead (``COPY FROM DATABASE`` into a new one, 2.6 s on that world): DuckDB's DELETE and
CREATE OR REPLACE leave the old rows' bytes in the file's free blocks, and a copy would carry them on.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import ibis

from lianjie.errors import ServiceBusy

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: writers in one process at a time only
    fcntl = None  # type: ignore[assignment]

CATALOG = "warehouse"  # the attached file's name inside a reader's in-memory DuckDB
_COMPACT = "_lianjie_compact"
_POLL = 0.05


def _sql_text(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def open_read_only(path: Path) -> Any:
    """An Ibis connection reading the published warehouse (no tables yet if there is none)."""
    con = ibis.duckdb.connect()
    if path.exists():
        con.raw_sql(f"ATTACH {_sql_text(path)} AS {CATALOG} (READ_ONLY)")
        con.raw_sql(f"USE {CATALOG}")
    return con


def compact_when_published(con: Any) -> None:
    """Publish this write's file compacted, without the free blocks of deleted rows (after an erasure)."""
    setattr(con, _COMPACT, True)


def _staged_files(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.writing-*"))


def _discard(staging: Path) -> None:
    for leftover in (staging, staging.with_name(staging.name + ".wal")):
        with suppress(FileNotFoundError):
            leftover.unlink()


def _fsync(path: Path, *, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def writers_turn(path: Path, wait: float | None) -> Iterator[None]:
    """The writers' lock of the warehouse at ``path`` (a ``flock`` on ``<path>.lock``, which excludes
    other processes and other threads alike); waits ``wait`` seconds at most (None: as long as it
    takes), then a 503 ``warehouse_busy``. Spark's warehouse folder takes it too."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as lock:
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if deadline is None else fcntl.LOCK_NB))
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise ServiceBusy("another write to the warehouse (a sync or a rebuild) is under way; "
                                      "retry shortly", code="warehouse_busy") from None
                time.sleep(_POLL)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _compacted(staging: Path) -> Path:
    fresh = staging.with_name(staging.name + "-compact")
    db = duckdb.connect()
    try:
        db.execute(f"ATTACH {_sql_text(staging)} AS old (READ_ONLY)")
        db.execute(f"ATTACH {_sql_text(fresh)} AS new")
        db.execute("COPY FROM DATABASE old TO new")
        db.execute("DETACH new")
        db.execute("DETACH old")
    finally:
        db.close()
    _discard(staging)
    return fresh


@contextmanager
def write(path: Path, *, wait: float | None = None) -> Iterator[Any]:
    """An Ibis connection to a private copy of the warehouse, published when the block ends without
    an error (discarded otherwise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with writers_turn(path, wait):
        for leftover in _staged_files(path):  # a writer that died before publishing
            _discard(leftover)
        staging = path.with_name(f"{path.name}.writing-{uuid.uuid4().hex}")
        try:
            if path.exists():
                shutil.copyfile(path, staging)
            con = ibis.duckdb.connect(str(staging))
            try:
                yield con
                con.raw_sql("CHECKPOINT")
            finally:
                con.disconnect()
            if getattr(con, _COMPACT, False):
                staging = _compacted(staging)
            _fsync(staging)
            os.replace(staging, path)
            _fsync(path.parent, directory=True)
        finally:
            _discard(staging)
