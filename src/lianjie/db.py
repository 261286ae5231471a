"""Database engine, sessions and the column types every domain shares.

SQLite (embedded default) runs in WAL mode with foreign keys on; PostgreSQL is reached through
psycopg 3. Services only ``flush()``; the entry point that opened the session (request dependency,
CLI command, job) commits or rolls back.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from lianjie.config import Settings

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: writers meet SQLite's busy handler only
    fcntl = None  # type: ignore[assignment]

IMMEDIATE_OPTION = "lianjie_write_transaction"
log = logging.getLogger(__name__)

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


def tenant_fk() -> ForeignKey:
    """Every operational row belongs to a merchant (``merchants`` is the tenants domain's table;
    a ForeignKey object serves one column, hence a function)."""
    return ForeignKey("merchants.id", ondelete="CASCADE")


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


class SettingsDocument:
    """Mixin of a merchant's settings kept as one JSON document, one row per merchant (identity rules,
    points programme, trait settings): validated and replaced whole, so it needs no columns per rule."""

    tenant_id: Mapped[int] = mapped_column(tenant_fk(), primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


def store_document(session: Session, model: type[SettingsDocument], tenant_id: int, config: dict[str, Any]) -> None:
    """Insert or replace a merchant's settings document."""
    row = session.get(model, tenant_id)
    if row is None:
        row = model()
        row.tenant_id = tenant_id
        session.add(row)
    row.config = config
    session.flush()


def transaction_cache(session: Session, name: str) -> dict[Any, Any]:
    """A dict that lives as long as the session's current transaction, for facts read on hot paths.

    Every order and every merge asks the loyalty domain for the merchant's programme and plans; within
    one transaction the answer cannot change unless this session writes it, and then the writer calls
    :func:`forget_cached`.
    """
    transaction = session.get_transaction()
    held = session.info.get(name)
    if held is None or held[0] is not transaction:
        held = session.info[name] = (transaction, {})
    cache: dict[Any, Any] = held[1]
    return cache


def forget_cached(session: Session, name: str) -> None:
    session.info.pop(name, None)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int, *, checkpoint_on_commit: bool = True) -> None:
    """WAL, foreign keys, and transactions that SQLAlchemy (not pysqlite) begins.

    pysqlite's own implicit BEGIN ignores SAVEPOINTs and DDL; taking over BEGIN makes SQLite's
    transactions behave like PostgreSQL's, which the test suite's rolled-back outer transaction needs.
    Without ``checkpoint_on_commit``, commits only append to the WAL and a :class:`_Checkpointer`
    copies it into the database file.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if not checkpoint_on_commit:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A writer that reads first (identity resolution) takes the write lock up front: a deferred
        # transaction that later upgrades can fail with SQLITE_BUSY without waiting.
        immediate = conn.get_execution_options().get(IMMEDIATE_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# A WAL file that grew past this (a burst the checkpoints could not keep up with) is cut back to it.
_WAL_SIZE_LIMIT = 64 * 1024 * 1024


class _Checkpointer:
    """Copies a SQLite file's write-ahead log into the database in the background, after commits.

    By default the connection whose commit takes the WAL past 1,000 pages copies it, inside that
    commit, while the next writer waits: under a steady load of tracking batches that was half of
    what a commit cost. A PASSIVE checkpoint needs no write lock, so here it runs on a thread of its
    own while writers go on appending. It never waits for readers either: frames they still need are
    copied by a later run.

    A PASSIVE checkpoint alone never catches up with writers that commit without a pause: the WAL
    starts again from its beginning only once every frame has been copied, so under a steady load it
    grew for as long as the load lasted (90 MB for 37,000 tracking events), and every frame went to a
    new block of the file, which the kernel allocates and zeroes (a tenth of a server's CPU). So once
    the WAL is past :attr:`_RESTART_FRAMES`, the PASSIVE copy is followed by a RESTART checkpoint
    taken in the writers' turn (:func:`writer_turn`): it copies only what was committed since,
    waits briefly for readers, and the next writer starts over at the beginning of the file.
    """

    _PAUSE = 0.1  # seconds between two checkpoints: commits in between are copied together
    _RESTART_FRAMES = 2_000  # pages in the WAL (8 MB of 4 KB pages); SQLite's own limit is 1,000
    _RESTART_WAIT_MS = 10  # how long a RESTART waits for readers before it gives up until next time

    def __init__(self, engine: Engine, writers: _WriterQueue | None, busy_timeout_ms: int) -> None:
        self._engine = engine
        self._writers = writers
        self._busy_timeout_ms = busy_timeout_ms
        self._due = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()
        event.listen(engine, "commit", lambda _conn: self._due.set())

    def _run(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            try:
                self.checkpoint()
            except Exception:  # a failed copy is retried after the next commit
                log.warning("background WAL checkpoint failed", exc_info=True)
            time.sleep(self._PAUSE)

    def checkpoint(self) -> None:
        # The driver connection itself: SQLAlchemy's would begin a transaction, in which SQLite
        # cannot checkpoint.
        connection = self._engine.raw_connection()
        try:
            cursor = connection.cursor()
            _busy, frames, _copied = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames >= self._RESTART_FRAMES:
                with self._writers.turn() if self._writers else nullcontext():
                    cursor.execute(f"PRAGMA busy_timeout={self._RESTART_WAIT_MS}")
                    try:
                        cursor.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
                    finally:
                        cursor.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        finally:
            connection.close()


def create_db_engine(url: str, *, busy_timeout_ms: int = 30_000, echo: bool = False,
                     pool_size: int | None = None, background_checkpoints: bool = False) -> Engine:
    """An engine for ``url``; SQLite files get their directory created and WAL configured.

    ``pool_size`` keeps that many connections (default 5, plus 10 overflow) for many-threaded callers.
    ``background_checkpoints``: a SQLite file's commits leave copying the WAL to a thread
    (:class:`_Checkpointer`), for a server that writes all the time.
    """
    parsed = make_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    sqlite_file = sqlite and parsed.database not in (None, "", ":memory:")
    kwargs: dict[str, Any] = {"echo": echo, "json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if pool_size is not None:
        kwargs |= {"pool_size": pool_size, "max_overflow": 2}
    # The pool hands out the connection returned last, not the one idle longest: a SQLite
    # connection keeps its page cache only while no other connection has committed since its last
    # transaction, and psycopg prepares a statement once a connection has run it five times.
    # Handing the connections out in turn made each start cold: about 5 % more CPU per tracking
    # event on SQLite, in interleaved benchmark runs. (In-memory SQLite has no such pool.)
    if sqlite_file or not sqlite:
        kwargs["pool_use_lifo"] = True
    if sqlite:
        if sqlite_file:
            Path(str(parsed.database)).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False}
    elif parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "postgresql":
        # psycopg prepares repeated statements; a generic plan chosen while a table was still empty
        # (a new merchant's events) would stick to a sequential scan. Plan each execution instead.
        # No JIT: it pays off for long analytic queries, which run on the warehouse, not here; and a
        # plan costed with sequential scans disabled (the identity lock's transactions) passed its
        # threshold, so looking up a batch's messageIds compiled code for 20 to 100 ms.
        kwargs["connect_args"] = {"options": "-c plan_cache_mode=force_custom_plan -c jit=off"}
    # No pool_pre_ping on SQLite: a file has no connection to lose, and the ping was a statement
    # per checkout (two per tracking request).
    engine = create_engine(parsed, **kwargs)
    if sqlite:
        in_background = background_checkpoints and sqlite_file
        _configure_sqlite(engine, busy_timeout_ms, checkpoint_on_commit=not in_background)
        if in_background:
            writers = _writer_queue_for(str(parsed.database)) if fcntl is not None else None
            _Checkpointer(engine, writers, busy_timeout_ms)
    return engine


def engine_from_settings(settings: Settings, *, background_checkpoints: bool = False) -> Engine:
    return create_db_engine(
        settings.resolved_database_url,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        echo=settings.log_sql,
        background_checkpoints=background_checkpoints,
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


class _WriterQueue:
    """Writers of one SQLite file, in turn: a lock for this process's threads, a lock file for processes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.threads = threading.Lock()
        self.pid = -1
        self.fd = -1

    @contextmanager
    def turn(self) -> Iterator[None]:
        with self.threads:
            if self.pid != os.getpid():  # opened per process: a forked child must not share the lock
                self.fd, self.pid = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)


_writer_queues: dict[str, _WriterQueue] = {}
_writer_queues_lock = threading.Lock()


def _writer_queue(factory: sessionmaker[Session]) -> _WriterQueue | None:
    if factory in _QUEUE_OF:
        return _QUEUE_OF[factory]
    queue = _QUEUE_OF[factory] = _find_writer_queue(factory)
    return queue


_QUEUE_OF: WeakKeyDictionary[sessionmaker[Session], _WriterQueue | None] = WeakKeyDictionary()


def _find_writer_queue(factory: sessionmaker[Session]) -> _WriterQueue | None:
    bind = factory.kw.get("bind")
    url = bind.engine.url if bind is not None else None
    if url is None or url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") \
            or fcntl is None:
        return None
    return _writer_queue_for(url.database)


def _writer_queue_for(database: str) -> _WriterQueue:
    """The queue of a SQLite file's writers; one per file in a process."""
    path = str(Path(database).expanduser().resolve()) + "-writers"
    with _writer_queues_lock:
        return _writer_queues.setdefault(path, _WriterQueue(path))


@contextmanager
def writer_turn(factory: sessionmaker[Session]) -> Iterator[None]:
    """Wait for this writer's turn on a SQLite file before taking its write lock; elsewhere a no-op.

    SQLite makes a writer that finds the database locked sleep and poll (its busy handler backs off
    to 100 ms a try), so under steady load most of the time goes to sleeping while the lock is free.
    Queuing on an OS lock instead wakes the next writer the moment the last one commits. Writers
    that do not queue (the CLI, a test) still meet SQLite's lock and busy timeout as before.
    Use around a whole ``transaction(factory, write=True)``; not re-entrant.
    """
    queue = _writer_queue(factory)
    if queue is None:
        yield
        return
    with queue.turn():
        yield


_IGNORING: dict[tuple[str, str, tuple[str, ...], str | None], Any] = {}


def insert_ignoring_duplicates(conn: Connection, table: Table, index_elements: tuple[str, ...], *,
                               returning: str | None = None) -> Any:
    """An INSERT that skips rows colliding on ``index_elements`` (SQLite and PostgreSQL alike),
    optionally returning one column of the rows it did insert.

    Built once per dialect, table and key: hot paths (the points ledger) run it on every operation,
    and building a statement costs more than running it.
    """
    dialect = conn.dialect.name
    memo = (dialect, table.name, index_elements, returning)
    if memo not in _IGNORING:
        stmt: Any
        if dialect == "postgresql":
            stmt = postgresql_insert(table).on_conflict_do_nothing(index_elements=list(index_elements))
        elif dialect == "sqlite":
            stmt = sqlite_insert(table).on_conflict_do_nothing(index_elements=list(index_elements))
        else:
            raise NotImplementedError(f"no duplicate-skipping insert for {dialect}")
        _IGNORING[memo] = stmt.returning(table.c[returning]) if returning else stmt
    return _IGNORING[memo]


# ---- plain SQL for the ingestion hot path ------------------------------------------------------------
# A batch of events goes through a handful of statements per request, each with many rows. Through
# SQLAlchemy every row's every value passes a Python type processor (and every ORM select an ORM
# compile step), which cost more than SQLite's own work; these helpers hand values the driver takes
# as they are: SQLite gets its stored text forms, PostgreSQL (psycopg) native objects.


def is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def one_writer_at_a_time(factory: sessionmaker[Session]) -> bool:
    """Whether a write transaction shuts every other writer out until it commits (SQLite's one write
    lock; PostgreSQL locks rows), so long jobs must commit often to let the API's writes in."""
    return bool(factory.kw["bind"].dialect.name == "sqlite")


def stores_times_as_text(factory: sessionmaker[Session]) -> bool:
    """Whether this factory's database keeps times as text (SQLite; see :func:`sqlite_time`)."""
    return bool(factory.kw["bind"].dialect.name == "sqlite")


def driver_execute(session: Session, sql: str, params: Any = ()) -> Any:
    """Run ``sql`` written with ``?`` placeholders on the session's connection, values untouched.

    ``params`` is one tuple, or a list of tuples for an executemany. Returns the DBAPI-level result.
    """
    connection = session.connection()
    if connection.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    return connection.exec_driver_sql(sql, params)


def driver_insert(session: Session, into: str, values: str, rows: list[tuple[Any, ...]], suffix: str = "") -> None:
    """``INSERT INTO {into} VALUES {values} {suffix}`` for many rows, values untouched.

    ``into`` is ``table (column, …)`` and ``values`` has one placeholder per column (``?``, or
    :func:`json_param`'s). SQLite runs an executemany of the one-row statement. PostgreSQL gets
    the rows by ``COPY`` (about a third of the server's work of one INSERT per row) unless a
    ``suffix`` such as ``ON CONFLICT`` asks for an INSERT, which psycopg then pipelines. A
    multi-row INSERT would cost more: psycopg converts the placeholders of a statement that long
    with a regular expression at every execution (it caches only short queries).
    """
    if not rows:
        return
    if is_sqlite(session) or suffix:
        driver_execute(session, f"INSERT INTO {into} VALUES {values} {suffix}", rows)
        return
    if values.count("?") != len(rows[0]):
        raise ValueError(f"driver_insert needs one placeholder per column: {values!r}")
    driver = session.connection().connection.driver_connection
    assert driver is not None, "a connection in a transaction has its driver connection"
    with driver.cursor().copy(f"COPY {into} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def in_values(session: Session, column: str, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
    """``column IN (…)`` with its parameters: one array on PostgreSQL (``= ANY(?)``), one ``?`` each on SQLite.

    A statement with hundreds of placeholders is parsed again by psycopg at each execution (see
    :func:`driver_insert`); with one array it stays short, cached and prepared.
    """
    if is_sqlite(session):
        return f"{column} IN ({placeholders(len(values))})", tuple(values)
    return f"{column} = ANY(?)", (list(values),)


def rows_by_key(session: Session, probe: str, params: tuple[Any, ...], keys: Sequence[Any], *,
                key_type: str = "text") -> list[Any]:
    """The rows ``probe`` finds for each of ``keys``, each key looked up in an index on its own.

    ``probe`` is a SELECT with ``?`` placeholders (``params``) whose WHERE clause ends with ``{key}``,
    the condition on the key column. SQLite gets ``IN (…)``, 500 keys a statement (its planner
    searches the index once per value). PostgreSQL gets the probe as a LATERAL subquery over the
    keys' ``unnest``, a nested loop of index look-ups, whatever the table's statistics say: with
    ``= ANY`` and statistics from before a burst of inserts (a merchant's first day of events), the
    planner read all of the merchant's rows for every batch, 17 ms instead of 0.7 for 500 messageIds.
    """
    if not keys:
        return []
    if is_sqlite(session):
        rows: list[Any] = []
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            sql = probe.replace("{key}", f"IN ({placeholders(len(chunk))})")
            rows += driver_execute(session, sql, (*params, *chunk)).fetchall()
        return rows
    sql = (f"SELECT x.* FROM unnest(?::{key_type}[]) AS k(key)"
           f" CROSS JOIN LATERAL ({probe.replace('{key}', '= k.key')} OFFSET 0) AS x")  # OFFSET: not flattened
    return list(driver_execute(session, sql, (list(keys), *params)).fetchall())


def placeholders(count: int) -> str:
    return ", ".join("?" * count)


def sqlite_time(value: dt.datetime | None) -> str | None:
    """What :class:`UTCDateTime` stores on SQLite (naive UTC, SQLAlchemy's text format)."""
    if value is None:
        return None
    if value.tzinfo is not dt.UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given; lianjie stores only timezone-aware times")
        value = value.astimezone(dt.UTC)
    return value.isoformat(" ", "microseconds")[:-6]  # without its "+00:00"


def time_binder(session: Session) -> Any:
    """A function giving the driver value of an aware datetime for this session's database."""
    return sqlite_time if is_sqlite(session) else _same


def _same(value: Any) -> Any:
    return value


def json_param(session: Session) -> str:
    """The placeholder for JSON text: PostgreSQL is told the type, SQLite stores the text as it is."""
    return "?" if is_sqlite(session) else "CAST(? AS JSON)"


def json_text(value: Any) -> str:
    """A JSON column's stored text, as the engine's serializer writes it."""
    return _json_dumps(value)


def json_value(stored: Any) -> Any:
    """A JSON column's value as read by :func:`driver_execute`: SQLite gives its text, psycopg the value."""
    return orjson.loads(stored) if isinstance(stored, str | bytes) else stored


_SEQUENCES: dict[tuple[str, str], str] = {}


def allocate_ids(session: Session, table: Table, count: int) -> list[int]:
    """Reserve ``count`` primary keys so rows can be inserted with one executemany, no RETURNING.

    PostgreSQL draws them from the column's sequence. SQLite has no sequence: the caller must hold
    the write lock (a ``transaction(write=True)``), under which ``max(id)`` cannot move.
    """
    if count == 0:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        key = (str(session.get_bind().engine.url), table.name)
        if key not in _SEQUENCES:  # fixed by the migrations; a round trip a batch saved on the hot path
            _SEQUENCES[key] = session.scalar(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table.name})
        sequence = _SEQUENCES[key]
        rows = session.scalars(text("SELECT nextval(:s) FROM generate_series(1, :n)"), {"s": sequence, "n": count})
        return list(rows)
    start = (driver_execute(session, f"SELECT max(id) FROM {table.name}").scalar() or 0) + 1
    return list(range(start, start + count))


# PostgreSQL's SQLSTATEs for "try again": serialization failure, deadlock, lock or statement timeout
# (lock_timeout, statement_timeout), and the connection classes (server gone, connection lost).
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03"})
_SQLITE_BUSY = frozenset({getattr(sqlite3, "SQLITE_BUSY", 5), getattr(sqlite3, "SQLITE_LOCKED", 6)})


def is_retryable(exc: DBAPIError) -> bool:
    """Whether a database error means "busy or unreachable, send the same request again" (a 503).

    Only a lock that stayed taken (SQLite's busy timeout, PostgreSQL's lock or statement timeout), a
    deadlock, a serialization failure or a lost connection is. Everything else (a constraint violated,
    a value that does not fit, SQL that does not parse) is a bug that retrying would not mend.
    """
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in _RETRYABLE_SQLSTATES or sqlstate.startswith("08")
    if isinstance(orig, sqlite3.OperationalError):
        code = getattr(orig, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in _SQLITE_BUSY
        return "locked" in str(orig)
    # psycopg reports a connection it could not open or lost without a SQLSTATE.
    return type(orig).__name__ == "OperationalError" and orig.__class__.__module__.startswith("psycopg")
