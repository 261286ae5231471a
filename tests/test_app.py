from __future__ import annotations

import sqlite3
from pathlib import Path

from fastapi.testclient import TestClient

from lianjie import migrate
from lianjie.app import create_app
from lianjie.config import Settings
from lianjie.db import create_db_engine, make_session_factory, transaction
from tests.factories import bearer, make_admin_key, make_merchant


def test_healthz_reports_the_database(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["database"] in {"sqlite", "postgresql"}


def test_docs_and_openapi_are_served(client: TestClient) -> None:
    assert "swagger" in client.get("/docs").text.lower()
    spec = client.get("/openapi.json").json()
    assert "/api/v1/stores" in spec["paths"]
    assert "/healthz" in spec["paths"]


def test_unknown_route_is_404(client: TestClient) -> None:
    assert client.get("/api/v1/nothing-here").status_code == 404


def test_a_database_locked_past_its_busy_timeout_is_a_503_to_retry_not_a_500(tmp_path: Path) -> None:
    # Another program (a backup, the CLI) holds SQLite's write lock longer than the server waits.
    url = f"sqlite:///{tmp_path / 'lianjie.db'}"
    engine = create_db_engine(url, busy_timeout_ms=100)
    migrate.upgrade_engine(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        key = make_admin_key(session, make_merchant(session))
    store = {"code": "SH001", "name": "上海一店", "city": "上海", "province": "上海", "type": "mall"}
    holder = sqlite3.connect(tmp_path / "lianjie.db", isolation_level=None)
    with TestClient(create_app(Settings(), session_factory=factory)) as client:
        holder.execute("BEGIN IMMEDIATE")
        busy = client.post("/api/v1/stores", json=store, headers=bearer(key))
        holder.execute("ROLLBACK")
        retried = client.post("/api/v1/stores", json=store, headers=bearer(key))
    holder.close()
    engine.dispose()
    assert busy.status_code == 503, busy.text
    assert busy.headers["Retry-After"] == "1"
    assert busy.json()["error"]["code"] == "busy"
    assert retried.status_code == 201, retried.text
