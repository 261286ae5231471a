"""Test fixtures: every database test runs on real SQLite and on a real throwaway PostgreSQL.

The schema is built by ``alembic upgrade head`` (so migrations are tested too), and each test runs
inside an outer transaction that is rolled back, so tests never see each other's rows.
"""

from __future__ import annotations

import base64
import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from lianjie import migrate, wiring
from lianjie.app import create_app
from lianjie.config import Settings, get_settings
from lianjie.crypto import get_cipher
from lianjie.db import create_db_engine
from tests import postgres, warehouse_backends

IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_configure(config: pytest.Config) -> None:
    """Give the whole run its own PII key and var dir, before anything reads settings."""
    var_dir = Path(str(config.rootpath)) / ".pytest-var"
    os.environ["LIANJIE_VAR_DIR"] = str(var_dir)
    os.environ["LIANJIE_PII_KEY"] = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    os.environ.pop("LIANJIE_DATABASE_URL", None)
    get_settings.cache_clear()
    get_cipher.cache_clear()
    wiring.install()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.ThrowawayPostgres]:
    try:
        server = postgres.start()
    except postgres.PostgresUnavailable as exc:
        if IN_CI:
            pytest.fail(f"CI=true but PostgreSQL is unavailable: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL unavailable, PostgreSQL runs skipped: {exc}")
    yield server
    server.stop()


def _fresh_postgres_database(server_url: str, name: str) -> str:
    admin = create_db_engine(server_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A migrated database of each kind, shared by the session."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'lianjie.db'}"
    else:
        server: postgres.ThrowawayPostgres = request.getfixturevalue("postgres_server")
        url = _fresh_postgres_database(server.url, "lianjie_test")
    eng = create_db_engine(url)
    migrate.upgrade_engine(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """One connection in an outer transaction that is rolled back after the test."""
    conn = engine.connect()
    outer = conn.begin()
    yield conn
    outer.rollback()
    conn.close()


@pytest.fixture
def session_factory(connection: Connection) -> sessionmaker[Session]:
    """Sessions whose commits become savepoints inside the test's outer transaction."""
    return sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
def db(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    session = session_factory()
    yield session
    session.close()


@pytest.fixture
def client(session_factory: sessionmaker[Session]) -> Iterator[TestClient]:
    app = create_app(Settings(), session_factory=session_factory)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None means the default: an embedded SQLite file under ./var of the working directory."""
    if request.param == "sqlite":
        yield None
        return
    server: postgres.ThrowawayPostgres = request.getfixturevalue("postgres_server")
    name = f"lianjie_cli_{uuid.uuid4().hex[:8]}"
    admin = create_db_engine(server.url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield server.url.rsplit("/", 1)[0] + "/" + name
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=warehouse_backends.BACKENDS)
def warehouse(request: pytest.FixtureRequest) -> Iterator[Any]:
    """An empty warehouse (an Ibis connection) on each backend; fill it with ``warehouse_backends.fill``."""
    with warehouse_backends.open_backend(request.param) as con:
        yield con
