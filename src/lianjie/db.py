"""Database engine, sessions and the column types every domain shares.

SQLite (embedded default) runs in WAL mode with foreign keys on; PostgreSQL is reached through
psycopg 3. Services only ``flush()``; the entry point that opened the session (request dependency,
CLI command, job) commits or rolls back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import BigInteger, DateTime, Engine, Integer, MetaData, Table, create_engine, event, func, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from lianjie.config import Settings

IMMEDIATE_OPTION = "lianjie_write_transaction"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every table; constraint names are stable for Alembic."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# SQLite only auto-increments an ``INTEGER PRIMARY KEY``; PostgreSQL gets a 64-bit identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware datetime stored as UTC on every backend.

    SQLite has no time zone type, so values are stored naive in UTC and come back aware; a naive
    value handed in is refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; lianjie stores only timezone-aware times")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def _json_dumps(value: Any) -> str:
    """orjson for JSON columns: events carry whole messages, and the stdlib encoder was a hot spot."""
    return orjson.dumps(value).decode()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    """WAL, foreign keys, and transactions that SQLAlchemy (not pysqlite) begins.

    pysqlite's own implicit BEGIN ignores SAVEPOINTs and DDL; taking over BEGIN makes SQLite's
    transactions behave like PostgreSQL's, which the test suite's rolled-back outer transaction needs.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A writer that reads first (identity resolution) takes the write lock up front: a deferred
        # transaction that later upgrades can fail with SQLITE_BUSY without waiting.
        immediate = conn.get_execution_options().get(IMMEDIATE_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_db_engine(url: str, *, busy_timeout_ms: int = 30_000, echo: bool = False,
                     pool_size: int | None = None) -> Engine:
    """An engine for ``url``; SQLite files get their directory created and WAL configured.

    ``pool_size`` keeps that many connections (default 5, plus 10 overflow) for many-threaded callers.
    """
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if pool_size is not None:
        kwargs |= {"pool_size": pool_size, "max_overflow": 2}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False}
    elif parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "postgresql":
        # psycopg prepares repeated statements; a generic plan chosen while a table was still empty
        # (a new merchant's events) would stick to a sequential scan. Plan each execution instead.
        kwargs["connect_args"] = {"options": "-c plan_cache_mode=force_custom_plan"}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        _configure_sqlite(engine, busy_timeout_ms)
    return engine


def engine_from_settings(settings: Settings) -> Engine:
    return create_db_engine(
        settings.resolved_database_url,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        echo=settings.log_sql,
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


@contextmanager
def transaction(factory: sessionmaker[Session], *, write: bool = False) -> Iterator[Session]:
    """One unit of work for a CLI command, request or job: commit on success, roll back on any error.

    ``write=True`` declares a transaction that reads in order to write (e.g. identity resolution): on
    SQLite it takes the write lock at BEGIN, so concurrent writers queue instead of failing.
    """
    session = factory()
    try:
        if write:
            session.connection(execution_options={IMMEDIATE_OPTION: True})
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def insert_ignoring_duplicates(session: Session, model: Any, index_elements: list[str]) -> Any:
    """An INSERT that skips rows colliding on ``index_elements`` (SQLite and PostgreSQL alike)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql_insert(model).on_conflict_do_nothing(index_elements=index_elements)
    if dialect == "sqlite":
        return sqlite_insert(model).on_conflict_do_nothing(index_elements=index_elements)
    raise NotImplementedError(f"no duplicate-skipping insert for {dialect}")


def allocate_ids(session: Session, table: Table, count: int) -> list[int]:
    """Reserve ``count`` primary keys so rows can be inserted with one executemany, no RETURNING.

    PostgreSQL draws them from the column's sequence. SQLite has no sequence: the caller must hold
    the write lock (a ``transaction(write=True)``), under which ``max(id)`` cannot move.
    """
    if count == 0:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        sequence = session.scalar(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table.name})
        rows = session.scalars(text("SELECT nextval(:s) FROM generate_series(1, :n)"), {"s": sequence, "n": count})
        return list(rows)
    start = (session.scalar(select(func.max(table.c.id))) or 0) + 1
    return list(range(start, start + count))
