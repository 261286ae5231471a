"""The SQLite engine a server runs on: commits only append to the WAL, a thread copies it into the file."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from lianjie.db import create_db_engine, make_session_factory, writer_turn


def _fill(url: str, rows: int, *, background: bool, pause: float = 0.0) -> tuple[int, int]:
    """Write ``rows`` rows of 1 KB in 100 commits, ``pause`` seconds apart; the database file's and the
    WAL's sizes after."""
    engine = create_db_engine(url, background_checkpoints=background)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE filler (id INTEGER PRIMARY KEY, body TEXT)"))
    for _ in range(100):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO filler (body) VALUES (:body)"),
                         [{"body": "x" * 1000} for _ in range(rows // 100)])
        time.sleep(pause)
    path = Path(url.removeprefix("sqlite:///"))
    deadline = time.monotonic() + 10
    while background and path.stat().st_size < rows * 1000 and time.monotonic() < deadline:
        time.sleep(0.05)
    sizes = path.stat().st_size, Path(f"{path}-wal").stat().st_size
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM filler")).scalar_one() == rows
    engine.dispose()
    return sizes


def test_background_checkpoints_copy_the_wal_into_the_file(tmp_path: Path) -> None:
    # 10 MB through commits that never checkpoint themselves: only the thread can have copied them.
    size, _ = _fill(f"sqlite:///{tmp_path / 'bg.db'}", 10_000, background=True)
    assert size >= 10_000 * 1000


def test_background_checkpoints_keep_the_wal_bounded_under_a_steady_load(tmp_path: Path) -> None:
    # 100 commits of ~100 KB over 3 s: each checkpoint lets the next writer reuse the WAL from its
    # start, so it stays a few commits long instead of holding the 10 MB written.
    _, wal = _fill(f"sqlite:///{tmp_path / 'bg.db'}", 10_000, background=True, pause=0.03)
    assert wal < 6 * 1024 * 1024


def _fill_without_pause(url: str, megabytes: int) -> int:
    """Commit ``megabytes`` MB in 100 KB commits back to back, each in the writers' turn as the
    server's writers take it, with the moment between two requests a server spends outside it;
    the largest the WAL got."""
    engine = create_db_engine(url, background_checkpoints=True)
    factory = make_session_factory(engine)
    wal, largest = Path(f"{url.removeprefix('sqlite:///')}-wal"), 0
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE filler (id INTEGER PRIMARY KEY, body TEXT)"))
    for _ in range(megabytes * 10):
        with writer_turn(factory), engine.begin() as conn:
            conn.execute(text("INSERT INTO filler (body) VALUES (:body)"), [{"body": "x" * 1000}] * 100)
        largest = max(largest, wal.stat().st_size)
        time.sleep(0.001)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM filler")).scalar_one() == megabytes * 1000
    engine.dispose()
    return largest


def test_background_checkpoints_keep_the_wal_bounded_when_commits_never_pause(tmp_path: Path) -> None:
    # A PASSIVE copy never catches up with writers that do not pause, so the WAL would hold all
    # 40 MB; the RESTART that follows a large one lets the next writer start at its beginning.
    largest = _fill_without_pause(f"sqlite:///{tmp_path / 'busy.db'}", 40)
    assert largest < 24 * 1024 * 1024, f"the WAL grew to {largest // 2**20} MB"


def test_without_background_checkpoints_commits_checkpoint_as_sqlite_does(tmp_path: Path) -> None:
    size, wal = _fill(f"sqlite:///{tmp_path / 'fg.db'}", 10_000, background=False)
    assert size >= 6_000 * 1000  # copied every 1,000 pages (4 MB)
    assert wal < 5 * 1024 * 1024


def test_the_pool_hands_out_the_connection_returned_last(tmp_path: Path, database_url: str | None) -> None:
    """A warm connection (page cache, prepared statements) goes back to work before an idle one."""
    engine = create_db_engine(database_url or f"sqlite:///{tmp_path / 'pool.db'}")
    try:
        first, second = engine.connect(), engine.connect()
        ids = [id(first.connection.dbapi_connection), id(second.connection.dbapi_connection)]
        first.close()
        second.close()  # returned last
        for _ in range(3):
            with engine.connect() as again:
                assert id(again.connection.dbapi_connection) == ids[1]
    finally:
        engine.dispose()
