"""Background jobs through huey: a queue in a SQLite file under ``var/`` by default (Redis with
``LIANJIE_JOBS_URL=redis://…``), periodic jobs on a schedule, and a consumer that ``lianjie serve``
runs inside the server (or ``lianjie jobs worker`` runs on its own).

Each job is a plain function that owns its transactions, like a CLI command: it calls the same
services the CLI and the API call, in batches that commit one by one, so a job stopped half way
keeps what it finished and the next run carries on (every job here is safe to run again at any
time). The queue is built from settings when first needed, not at import time (DESIGN.md), and the
jobs are registered on it then. When each job runs is ``jobruns.SCHEDULE``; every run, however it
was started, is recorded there too (:func:`run_job`), with what it did for each merchant.

This module sits with ``app`` and ``cli`` at the top of the import order: it may import every domain.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lianjie import jobruns
from lianjie.audience import settings as trait_settings
from lianjie.audience.service import replace_traits
from lianjie.config import Settings, get_settings
from lianjie.db import engine_from_settings, make_session_factory, transaction, utcnow
from lianjie.loyalty import ledger, tiers
from lianjie.loyalty import programme as programme_rules
from lianjie.loyalty.coalition import points as coalition_points
from lianjie.loyalty.coalition import settlement
from lianjie.loyalty.coalition.models import Coalition, CoalitionMember, CoalitionPeriod
from lianjie.loyalty.membership import lifecycle, plans
from lianjie.loyalty.membership.models import MembershipPlan
from lianjie.loyalty.membership.terms import local_date
from lianjie.loyalty.models import LoyaltyProgramme
from lianjie.tenants import audit
from lianjie.tenants.models import Merchant
from lianjie.warehouse import connection as warehouse_connection
from lianjie.warehouse import sync as warehouse_sync

log = logging.getLogger("lianjie.jobs")


@dataclass(frozen=True)
class Job:
    """A background job: what it does, and when it runs on its own (its entry in ``jobruns.SCHEDULE``)."""

    scheduled: jobruns.Scheduled
    run: Callable[[JobContext], dict[str, Any]]

    @property
    def name(self) -> str:
        return self.scheduled.name

    @property
    def schedule(self) -> dict[str, str]:
        return self.scheduled.schedule

    @property
    def description(self) -> str:
        return self.scheduled.description

    @property
    def crontab(self) -> str:
        return self.scheduled.crontab


@dataclass
class JobContext:
    """What a running job is given: the database, the settings, and where it notes what it did per merchant."""

    name: str
    factory: sessionmaker[Session]
    settings: Settings
    parts: jobruns.RunParts = field(default_factory=jobruns.RunParts)

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """One of the job's transactions; its writes are the job's in the audit log (``job:<name>``)."""
        with transaction(self.factory, write=write) as session:
            audit.act_as(session, f"job:{self.name}")
            yield session

    def each_merchant(self, tenant_ids: Iterable[int], work: Callable[[int], dict[str, Any]]) -> list[dict[str, Any]]:
        """``work`` for each merchant, noting each one's result; a merchant whose work fails is noted as
        failed with its error and the others still run (the run then ends ``failed``)."""
        results = []
        for tenant_id in tenant_ids:
            try:
                result = work(tenant_id)
            except Exception as exc:
                log.exception("job %s failed for merchant %s", self.name, tenant_id)
                self.parts.failed(tenant_id, exc)
                continue
            self.parts.done(tenant_id, result)
            results.append(result)
        return results


class JobFailed(RuntimeError):
    """A run ended failed (recorded in ``job_runs`` with its error)."""


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


def expire_points(ctx: JobContext, *, batch: int = 500) -> dict[str, Any]:
    """Expire lapsed points and cancel lapsed till holds for every merchant, a batch per transaction."""
    now = utcnow()
    fields = ("expired", "accounts", "holds_cancelled", "released")

    def one(tenant_id: int) -> dict[str, Any]:
        run = expire_merchant(ctx.factory, tenant_id, now, batch=batch)
        return {name: getattr(run, name) for name in fields}

    done = ctx.each_merchant(_merchants_with_programme(ctx.factory), one)
    return {"merchants": len(done)} | {name: sum(r[name] for r in done) for name in fields}


def evaluate_tiers(ctx: JobContext) -> dict[str, Any]:
    """The periodic tier evaluation for every merchant: grace periods start, downgrades after grace."""
    def one(tenant_id: int) -> dict[str, Any]:
        with ctx.transaction() as session:
            config = programme_rules.load(session, tenant_id)
            return {"changed": tiers.evaluate_all(session, config, tenant_id, utcnow())}

    done = ctx.each_merchant(_merchants_with_programme(ctx.factory), one)
    return {"merchants": len(done), "changed": sum(r["changed"] for r in done)}


def sync_warehouse(ctx: JobContext) -> dict[str, Any]:
    """Copy new and changed rows into the warehouse (all merchants' at once: no part of it is one merchant's)."""
    report = warehouse_sync.run(ctx.factory, ctx.settings)
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


def compute_traits(ctx: JobContext) -> dict[str, Any]:
    """Sync the warehouse, then recompute every merchant's RFM, lifecycle stage and CLV."""
    warehouse_sync.run(ctx.factory, ctx.settings)
    result = compute_traits_for(ctx.factory, ctx.settings)
    for summary in result["merchants"]:
        ctx.parts.done(summary["tenant_id"], summary)
    return result


# ---- paid membership ------------------------------------------------------------------------------


def _merchants_with_plans(factory: sessionmaker[Session]) -> list[int]:
    with transaction(factory) as session:
        return list(session.scalars(select(MembershipPlan.tenant_id).distinct().order_by(MembershipPlan.tenant_id)))


def _merchant_today(ctx: JobContext, tenant_id: int) -> dt.date:
    with ctx.transaction(write=False) as session:
        return local_date(utcnow(), plans.zone_of(session, tenant_id))


def renew_memberships(ctx: JobContext, *, batch: int = 200) -> dict[str, Any]:
    """Renew the auto-renewing memberships due on each merchant's local day, ``batch`` per transaction
    (``lianjie membership renew-due`` for every merchant with plans; safe to run again)."""
    def one(tenant_id: int) -> dict[str, Any]:
        today, renewed = _merchant_today(ctx, tenant_id), 0
        while True:
            with ctx.transaction() as session:
                done = lifecycle.renew_due(session, tenant_id, today, limit=batch)
            renewed += done
            if done == 0:
                return {"date": today.isoformat(), "renewed": renewed}

    done = ctx.each_merchant(_merchants_with_plans(ctx.factory), one)
    return {"merchants": len(done), "renewed": sum(r["renewed"] for r in done)}


def lapse_memberships(ctx: JobContext, *, batch: int = 500) -> dict[str, Any]:
    """Terms past their end into grace and past grace lapsed, on each merchant's local day
    (``lianjie membership lapse`` for every merchant with plans; safe to run again)."""
    def one(tenant_id: int) -> dict[str, Any]:
        today, graced, lapsed = _merchant_today(ctx, tenant_id), 0, 0
        while True:
            with ctx.transaction() as session:
                into_grace, gone = lifecycle.lapse(session, tenant_id, today, limit=batch)
            graced, lapsed = graced + into_grace, lapsed + gone
            if into_grace + gone == 0:
                return {"date": today.isoformat(), "grace": graced, "lapsed": lapsed}

    done = ctx.each_merchant(_merchants_with_plans(ctx.factory), one)
    return {"merchants": len(done), "grace": sum(r["grace"] for r in done), "lapsed": sum(r["lapsed"] for r in done)}


# ---- coalition settlement -------------------------------------------------------------------------


def previous_month(timezone: str, now: dt.datetime) -> str:
    """The month before ``now``'s, in the zone: ``2026-11`` from 1 December 00:30 in Shanghai
    (30 November 16:30 UTC), while it is still 2026-10 for a coalition in Chicago."""
    local = now.astimezone(ZoneInfo(timezone))
    year, month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def close_coalition_months(ctx: JobContext, *, batch: int = 500, now: dt.datetime | None = None) -> dict[str, Any]:
    """Close every coalition's previous month (in its time zone, as of ``now``) that is not closed yet:
    expire the lots that lapsed in it, ``batch`` per transaction, then store its statement, as
    ``lianjie coalition close`` does. The operator's and every member's part say which month was closed.
    It runs daily, so a month whose first night was missed (the server down) is closed the next day."""
    now = now or utcnow()
    with transaction(ctx.factory) as session:
        coalitions = list(session.execute(select(Coalition.id, Coalition.code, Coalition.timezone,
                                                 Coalition.operator_tenant_id).order_by(Coalition.id)))
    closed = []
    for coalition_id, code, timezone, operator in coalitions:
        period = previous_month(timezone, now)
        try:
            closed.append(_close_month(ctx, coalition_id, period, batch))
        except Exception as exc:
            log.exception("job %s failed for coalition %s", ctx.name, code)
            ctx.parts.failed(operator, exc)
    return {"coalitions": len(coalitions), "closed": closed}


def _close_month(ctx: JobContext, coalition_id: int, period: str, batch: int) -> dict[str, Any]:
    with ctx.transaction(write=False) as session:
        coalition = session.get_one(Coalition, coalition_id)
        start, end = settlement.bounds(coalition, period)
        done_before = session.scalar(select(CoalitionPeriod.id).where(
            CoalitionPeriod.coalition_id == coalition_id, CoalitionPeriod.starts_at == start)) is not None
    outcome: dict[str, Any] = {"coalition": coalition.code, "period": period, "closed_now": False,
                               "expired_points": 0}
    if done_before:
        return outcome
    while True:
        with ctx.transaction() as session:
            coalition = session.get_one(Coalition, coalition_id)
            done = coalition_points.expire_due(session, coalition, end - dt.timedelta(microseconds=1), limit=batch)
        outcome["expired_points"] += done
        if not done:
            break
    with ctx.transaction() as session:
        coalition = session.get_one(Coalition, coalition_id)
        _, outcome["closed_now"] = settlement.close(session, coalition, period, closed_by=f"job:{ctx.name}")
        members = set(session.scalars(select(CoalitionMember.tenant_id).where(
            CoalitionMember.coalition_id == coalition_id)))
    if outcome["closed_now"]:
        ctx.parts.done(coalition.operator_tenant_id, outcome)
        for tenant_id in sorted(members - {coalition.operator_tenant_id}):
            ctx.parts.done(tenant_id, {"coalition": coalition.code, "period": period, "closed_now": True})
    return outcome


_RUNS: dict[str, Callable[[JobContext], dict[str, Any]]] = {
    "expire-points": expire_points, "evaluate-tiers": evaluate_tiers, "compute-traits": compute_traits,
    "sync-warehouse": sync_warehouse, "renew-memberships": renew_memberships,
    "lapse-memberships": lapse_memberships, "close-coalition-months": close_coalition_months,
}
JOBS: dict[str, Job] = {scheduled.name: Job(scheduled, _RUNS[scheduled.name]) for scheduled in jobruns.SCHEDULE}


@lru_cache(maxsize=4)
def _session_factory(database_url: str) -> sessionmaker[Session]:
    """One engine per process and database for the jobs a consumer runs."""
    settings = get_settings()
    return make_session_factory(engine_from_settings(settings.model_copy(update={"database_url": database_url})))


def run_job(name: str, settings: Settings | None = None, *, trigger: str = "cli") -> dict[str, Any]:
    """Run one job now, in this process (what the consumer does when the job comes up), recorded in
    ``job_runs``: its start at once, its end with the result and each merchant's part. A job that
    raises, or whose work failed for a merchant, is recorded as failed with the error and raises
    :class:`JobFailed` (the consumer logs it, ``lianjie jobs run`` exits 1)."""
    settings = settings or get_settings()
    job = JOBS[name]
    factory = _session_factory(settings.resolved_database_url)
    run_id = jobruns.start(factory, name, trigger)
    ctx = JobContext(name, factory, settings)
    log.info("job %s started (run %s)", name, run_id)
    try:
        result = job.run(ctx)
    except Exception as exc:
        jobruns.finish(factory, run_id, result=None, parts=ctx.parts, error=jobruns.describe(exc))
        raise JobFailed(f"job {name} failed (run {run_id}): {jobruns.describe(exc)}") from exc
    jobruns.finish(factory, run_id, result=result, parts=ctx.parts)
    if ctx.parts.failures:
        raise JobFailed(f"job {name} failed for {len(ctx.parts.failures)} merchant(s) (run {run_id}); "
                        "`lianjie jobs history` shows why")
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
        return run_job(name, settings, trigger="queue")

    return JobQueue(huey, huey.task(name="run-now")(run_now))


def _runner(name: str, settings: Settings) -> Callable[[], dict[str, Any]]:
    def run() -> dict[str, Any]:
        return run_job(name, settings, trigger="schedule")
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
