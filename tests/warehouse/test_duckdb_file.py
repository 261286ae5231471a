"""The DuckDB warehouse file's readers and writers (warehouse/duckdb_file.py): a reader keeps the
version it opened, a write is seen whole once it is done, a failed write publishes nothing, writers
take turns, and a request that waits too long behind another write is a 503 with Retry-After."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from lianjie.app import create_app
from lianjie.config import Settings
from lianjie.errors import ServiceBusy
from lianjie.warehouse import duckdb_file, http
from lianjie.warehouse.connection import connect, writing
from tests.factories import bearer, make_admin_key, make_merchant


def _value(con: Any) -> int:
    return int(con.raw_sql("SELECT v FROM t").fetchone()[0])


def _set(path: Path, value: int) -> None:
    with duckdb_file.write(path) as con:
        con.raw_sql(f"CREATE OR REPLACE TABLE t AS SELECT {value} AS v")


def test_readers_keep_their_version_and_see_a_write_once_it_is_done(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    _set(path, 1)
    early = duckdb_file.open_read_only(path)
    with duckdb_file.write(path) as con:
        con.raw_sql("CREATE OR REPLACE TABLE t AS SELECT 2 AS v")
        con.raw_sql("CREATE TABLE half AS SELECT 1 AS x")
        during = duckdb_file.open_read_only(path)
        assert (_value(during), "half" in during.list_tables()) == (1, False)  # nothing of an unfinished write
        during.disconnect()
    late = duckdb_file.open_read_only(path)
    assert (_value(early), _value(late)) == (1, 2)
    early.disconnect()
    late.disconnect()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb", "warehouse.duckdb.lock"]


def test_a_failed_write_publishes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    _set(path, 1)

    def half_a_sync() -> None:
        with duckdb_file.write(path) as con:
            con.raw_sql("CREATE OR REPLACE TABLE t AS SELECT 2 AS v")
            raise RuntimeError("the sync failed half-way")

    with pytest.raises(RuntimeError):
        half_a_sync()
    reader = duckdb_file.open_read_only(path)
    assert _value(reader) == 1
    reader.disconnect()
    assert not list(tmp_path.glob("*.writing-*"))


def test_writers_take_turns(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    _set(path, 0)
    first_in, go_on = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with duckdb_file.write(path) as con:
            first_in.set()
            go_on.wait(10)
            con.raw_sql("CREATE OR REPLACE TABLE t AS SELECT (SELECT v FROM t) + 1 AS v")

    thread = threading.Thread(target=slow_writer)
    thread.start()
    first_in.wait(10)
    with pytest.raises(ServiceBusy) as busy, duckdb_file.write(path, wait=0.2):
        pass
    assert busy.value.code == "warehouse_busy"
    go_on.set()
    with duckdb_file.write(path) as con:  # waits its turn, then builds on the first writer's result
        con.raw_sql("CREATE OR REPLACE TABLE t AS SELECT (SELECT v FROM t) + 1 AS v")
    thread.join()
    reader = duckdb_file.open_read_only(path)
    assert _value(reader) == 2
    reader.disconnect()


@pytest.fixture
def app_on_a_file(session_factory: sessionmaker[Session], tmp_path: Path) -> Iterator[tuple[TestClient, Settings]]:
    settings = Settings(warehouse_url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    with TestClient(create_app(settings, session_factory=session_factory)) as client:
        yield client, settings


def test_before_the_first_sync_readers_get_409_and_a_busy_writer_a_503(
        app_on_a_file: tuple[TestClient, Settings], db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    client, settings = app_on_a_file
    shop = make_merchant(db)
    h = bearer(make_admin_key(db, shop))
    db.commit()
    never = client.get("/api/v1/analytics/overview", params={"from": "2026-01-01", "to": "2026-01-31"}, headers=h)
    assert never.status_code == 409, never.text
    assert never.json()["error"]["code"] == "warehouse_not_ready"
    segment = client.post("/api/v1/segments", json={"name": "VIP", "rule": {"tag": "vip"}}, headers=h).json()
    monkeypatch.setattr(http, "WRITER_WAIT_SECONDS", 0.2)
    with writing(settings):  # a sync under way
        busy = client.post(f"/api/v1/segments/{segment['id']}/snapshots", json={}, headers=h)
        read = connect(settings)  # and reading goes on
        read.disconnect()
    assert busy.status_code == 503, busy.text
    assert (busy.json()["error"]["code"], busy.headers["Retry-After"]) == ("warehouse_busy", "1")
