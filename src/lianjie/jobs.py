"""Background jobs through huey: a queue in a SQLite file under ``var/`` by default (Redis with
``LIANJIE_JOBS_URL=redis://…``), periodic jobs on a schedule, and a consumer that ``lianjie serve``
runs inside the server (or ``lianjie jobs worker`` runs on its own).

Each job is a plain function that owns its transactions, like a CLI command: it calls the same
services the CLI and the API call, in batches that commit one by one, so a job stopped half way
keeps what it finished and the next run carries on (every job here is safe to run again at any
time). The queue is built from settings when first needed, not at import time (DESIGN.md), and the
jobs are registered on it then.

This module sits with ``app`` and ``cli`` at the top of the import order: it may import every domain.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lianjie.audience import settings as trait_settings
from lianjie.audience.service import replace_traits
from lianjie.config import Settings, get_settings
from lianjie.db import engine_from_settings, make_session_factory, transaction, utcnow
from lianjie.loyalty import ledger, tiers
from lianjie.loyalty import programme as programme_rules
from lianjie.loyalty.models import LoyaltyProgramme
from lianjie.tenants.models import Merchant
from lianjie.warehouse import connection as warehouse_connection
from lianjie.warehouse import sync as warehouse_sync

log = logging.getLogger("lianjie.jobs")


@dataclass(frozen=True)
class Job:
    """A background job: its name, what it does, and when it runs on its own (a crontab in UTC)."""

    name: str
    run: Callable[[sessionmaker[Session], Settings], dict[str, Any]]
    schedule: dict[str, str]
    description: str

    @property
    def crontab(self) -> str:
        """The schedule as a crontab line (minute hour day month weekday)."""
        return " ".join(self.schedule.get(k, "*") for k in ("minute", "hour", "day", "month", "day_of_week"))


def _merchants_with_programme(factory: sessionmaker[Session]) -> list[int]:
    with transaction(factory) as session:
        return list(session.scalars(select(LoyaltyProgramme.tenant_id).order_by(LoyaltyProgramme.tenant_id)))


def expire_merchant(factory: sessionmaker[Session], tenant_id: int, now: dt.datetime, *, batch: int = 500,
                    on_batch: Callable[[ledger.ExpiryRun], None] | None = None) -> ledger.ExpiryRun:
    """Expire one merchant's lapsed points and lapsed till holds, ``batch`` accounts per transaction,
    until none are left (the job below and `lianjie loyalty expire` both run this)."""
    total = ledger.ExpiryRun()
    while True:
        with transaction(factory, write=True) as session:
            run = ledger.expire_due(session, tenant_id, now, limit=batch)
        for name in ("expired", "accounts", "holds_cancelled", "released"):
            setattr(total, name, getattr(total, name) + getattr(run, name))
        if on_batch is not None:
            on_batch(run)
        if run.done:
            return total


def expire_points(factory: sessionmaker[Session], settings: Settings, *, batch: int = 500) -> dict[str, Any]:
    """Expire lapsed points and cancel lapsed till holds for every merchant, a batch per transaction."""
    totals = {"merchants": 0, "expired": 0, "accounts": 0, "holds_cancelled": 0, "released": 0}
    now = utcnow()
    for tenant_id in _merchants_with_programme(factory):
        totals["merchants"] += 1
        run = expire_merchant(factory, tenant_id, now, batch=batch)
        for name in ("expired", "accounts", "holds_cancelled", "released"):
            totals[name] += getattr(run, name)
    return totals


def evaluate_tiers(factory: sessionmaker[Session], settings: Settings) -> dict[str, Any]:
    """The periodic tier evaluation for every merchant: grace periods start, downgrades after grace."""
    changed = 0
    merchants = _merchants_with_programme(factory)
    for tenant_id in merchants:
        with transaction(factory, write=True) as session:
            config = programme_rules.load(session, tenant_id)
            changed += tiers.evaluate_all(session, config, tenant_id, utcnow())
    return {"merchants": len(merchants), "changed": changed}


def sync_warehouse(factory: sessionmaker[Session], settings: Settings) -> dict[str, Any]:
    """Copy new and changed rows into the warehouse."""
    report = warehouse_sync.run(factory, settings)
    return {"rows": report.rows, "erased_profiles": report.erased_profiles, "seconds": report.seconds}


def compute_traits_for(factory: sessionmaker[Session], settings: Settings, *, merchant: int | None = None,
                       as_of: dt.datetime | None = None,
                       on_merchant: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """Compute every merchant's (or one merchant's) traits in the warehouse, rewrite its
    ``customer_traits`` table, then copy each merchant's rows into the operational store, one
    transaction per merchant (the job below and `lianjie traits compute` both run this).

    ``on_merchant(slug, customers)`` is called as each merchant is done (the CLI's progress bar).
    A warehouse that was never synced has no orders yet: nothing is computed.
    """
    # Imported here: the models bring SciPy, about a second to import, which every CLI command and
    # the server would otherwise pay at start-up (cli_analytics does the same for `clv fit`).
    from lianjie.audience import traits

    as_of = as_of or utcnow()
    with transaction(factory) as session:
        query = select(Merchant.id, Merchant.slug, Merchant.timezone).order_by(Merchant.id)
        merchants = list(session.execute(query if merchant is None else query.where(Merchant.id == merchant)))
        configs = {m.id: trait_settings.load(session, m.id) for m in merchants}
    with warehouse_connection.writing(settings) as con:
        if not {"orders", "identity_map"} <= set(con.list_tables()):
            return {"merchants": [], "computed_at": as_of.isoformat(), "skipped": "the warehouse was never synced"}
        runs = []
        for m in merchants:
            runs.append(traits.compute_merchant(con, m.id, m.timezone, configs[m.id], as_of))
            runs[-1].slug = m.slug
            if on_merchant is not None:
                on_merchant(m.slug, runs[-1].rows.num_rows)
        traits.write(con, runs, everyone=merchant is None)
    for run in runs:
        with transaction(factory, write=True) as session:
            replace_traits(session, run.tenant_id, run.rows)
    return {"merchants": [run.summary() for run in runs], "computed_at": as_of.isoformat()}


def compute_traits(factory: sessionmaker[Session], settings: Settings) -> dict[str, Any]:
    """Sync the warehouse, then recompute every merchant's RFM, lifecycle stage and CLV."""
    warehouse_sync.run(factory, settings)
    return compute_traits_for(factory, settings)


JOBS: dict[str, Job] = {job.name: job for job in (
    Job("expire-points", expire_points, {"minute": "5"},
        "hourly: expire lapsed points lots and cancel lapsed till holds"),
    Job("evaluate-tiers", evaluate_tiers, {"minute": "15", "hour": "19"},
        "daily at 19:15 UTC (03:15 in China): tier grace periods and downgrades"),
    Job("compute-traits", compute_traits, {"minute": "40", "hour": "19"},
        "daily at 19:40 UTC (03:40 in China): sync the warehouse, then RFM, lifecycle stages and CLV"),
    Job("sync-warehouse", sync_warehouse, {"minute": "*"}, "every minute: new and changed rows into the warehouse"),
)}


@lru_cache(maxsize=4)
def _session_factory(database_url: str) -> sessionmaker[Session]:
    """One engine per process and database for the jobs a consumer runs."""
    settings = get_settings()
    return make_session_factory(engine_from_settings(settings.model_copy(update={"database_url": database_url})))


def run_job(name: str, settings: Settings | None = None) -> dict[str, Any]:
    """Run one job now, in this process (what the consumer does when the job comes up)."""
    settings = settings or get_settings()
    job = JOBS[name]
    log.info("job %s started", name)
    result = job.run(_session_factory(settings.resolved_database_url), settings)
    log.info("job %s done: %s", name, result)
    return result


@dataclass
class JobQueue:
    """The huey queue with every job on its schedule, and one task that runs any job on demand
    (huey keeps no results of periodic tasks; an on-demand run's result can be waited for)."""

    huey: Huey
    run_now: Any

    def enqueue(self, name: str) -> Any:
        """Queue a job to run now (besides its schedule); returns huey's result handle."""
        if name not in JOBS:
            raise KeyError(f"no job {name!r}")
        return self.run_now(name)


def build_queue(settings: Settings) -> JobQueue:
    """The queue the settings name: Redis for ``LIANJIE_JOBS_URL=redis://…``, else var_dir/jobs.db."""
    if settings.jobs_url and settings.jobs_url.startswith(("redis://", "rediss://")):
        huey: Huey = RedisHuey("lianjie", url=settings.jobs_url)
    else:
        path = settings.resolved_var_dir / "jobs.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey("lianjie", filename=str(path))
    for job in JOBS.values():
        huey.periodic_task(crontab(**job.schedule, strict=True), name=job.name)(_runner(job.name, settings))

    def run_now(name: str) -> dict[str, Any]:
        return run_job(name, settings)

    return JobQueue(huey, huey.task(name="run-now")(run_now))


def _runner(name: str, settings: Settings) -> Callable[[], dict[str, Any]]:
    def run() -> dict[str, Any]:
        return run_job(name, settings)
    run.__name__ = name.replace("-", "_")
    return run


class EmbeddedConsumer(Consumer):  # type: ignore[misc]  # huey ships no type hints
    """A consumer that runs inside another program (the server): it leaves the program's signal
    handlers alone, so Ctrl-C and SIGTERM still reach uvicorn, which then stops the consumer."""

    def _set_signal_handlers(self) -> None:
        pass


def consumer(queue: JobQueue, *, workers: int = 1) -> Consumer:
    """A stand-alone consumer (``lianjie jobs worker``): thread workers and the periodic scheduler."""
    return Consumer(queue.huey, workers=workers, periodic=True, worker_type="thread")


def start_embedded(settings: Settings) -> EmbeddedConsumer:
    """Start a one-worker consumer with the periodic scheduler in background threads."""
    embedded = EmbeddedConsumer(build_queue(settings).huey, workers=1, periodic=True, worker_type="thread")
    embedded.start()
    return embedded
