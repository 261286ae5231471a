"""The background jobs' schedule, and the record of every run: when it started and ended, how it went
(``ok``, ``failed`` with the error) and what it did, in all and for each merchant it concerned.

The schedule is plain data, kept here rather than with the job functions (``lianjie.jobs``, at the
top of the import order) so that the API showing it needs none of the machinery that runs it.

Jobs span merchants, and what a merchant's key is shown of them is only what concerns it
(``GET /api/v1/jobs``, scope ``jobs:read``): the schedule, and for each run its times and the part
of the result recorded for that merchant (its own expired points, renewals, closed coalition month
…), never another merchant's figures or the run's totals. A part that failed carries its error; a
run that failed outside any merchant's part (the warehouse unreachable, say) shows as failed
without the error text, which may name the server's files: the operator reads it with
``lianjie jobs history``, which shows everything.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from lianjie.db import Base, BigId, UTCDateTime, tenant_fk, transaction, utcnow
from lianjie.errors import LianjieError

RUNNING, OK, FAILED = "running", "ok", "failed"
ERROR_LENGTH = 2000


@dataclass(frozen=True)
class Scheduled:
    """When a job runs on its own (a crontab in UTC) and what it does."""

    name: str
    schedule: dict[str, str]
    description: str

    @property
    def crontab(self) -> str:
        """The schedule as a crontab line (minute hour day month weekday)."""
        return " ".join(self.schedule.get(k, "*") for k in ("minute", "hour", "day", "month", "day_of_week"))


SCHEDULE: tuple[Scheduled, ...] = (
    Scheduled("expire-points", {"minute": "5"}, "hourly: expire lapsed points lots and cancel lapsed till holds"),
    Scheduled("evaluate-tiers", {"minute": "15", "hour": "19"},
              "daily at 19:15 UTC (03:15 in China): tier grace periods and downgrades"),
    Scheduled("compute-traits", {"minute": "40", "hour": "19"},
              "daily at 19:40 UTC (03:40 in China): sync the warehouse, then RFM, lifecycle stages and CLV"),
    Scheduled("sync-warehouse", {"minute": "*"}, "every minute: new and changed rows into the warehouse"),
    Scheduled("renew-memberships", {"minute": "5", "hour": "16"},
              "daily at 16:05 UTC (00:05 in China): renew the auto-renewing paid memberships due on each "
              "merchant's local day"),
    Scheduled("lapse-memberships", {"minute": "10", "hour": "16"},
              "daily at 16:10 UTC (00:10 in China): paid membership terms past their end into grace, past "
              "grace lapsed"),
    Scheduled("close-coalition-months", {"minute": "30", "hour": "16"},
              "daily at 16:30 UTC (00:30 in China): close each coalition's previous month in its time zone "
              "if it is not closed yet (expiry, then the statement)"),
)


class JobRun(Base):
    """One run of a background job."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_job_id", "job", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(16))  # schedule, queue (run now through huey), cli
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    outcome: Mapped[str] = mapped_column(String(16), default=RUNNING)
    error: Mapped[str | None] = mapped_column(String(ERROR_LENGTH), default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class JobRunMerchant(Base):
    """The part of a run that concerned one merchant: what the job did for it, or why it failed."""

    __tablename__ = "job_run_merchants"
    __table_args__ = (UniqueConstraint("run_id", "tenant_id"),
                      Index("ix_job_run_merchants_tenant_run", "tenant_id", "run_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(BigId, ForeignKey("job_runs.id", ondelete="CASCADE"))
    tenant_id: Mapped[int] = mapped_column(BigId, tenant_fk())
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(ERROR_LENGTH), default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


@dataclass
class Part:
    outcome: str
    result: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class RunParts:
    """What a running job records per merchant, written with the run's end."""

    parts: dict[int, Part] = field(default_factory=dict)

    def done(self, tenant_id: int, result: dict[str, Any]) -> None:
        self.parts[tenant_id] = Part(OK, result)

    def failed(self, tenant_id: int, exc: BaseException) -> None:
        self.parts[tenant_id] = Part(FAILED, error=describe(exc))

    @property
    def failures(self) -> dict[int, Part]:
        return {t: p for t, p in self.parts.items() if p.outcome == FAILED}


def describe(exc: BaseException) -> str:
    """An error as a run records it: a domain error's code and message, else the exception's type and text."""
    text = f"{exc.code}: {exc.message}" if isinstance(exc, LianjieError) else f"{type(exc).__name__}: {exc}"
    return text[:ERROR_LENGTH]


def start(factory: sessionmaker[Session], job: str, trigger: str) -> int:
    """Record that a run started (committed at once, so a run that never ends still shows)."""
    with transaction(factory, write=True) as session:
        run = JobRun(job=job, trigger=trigger[:16], started_at=utcnow(), outcome=RUNNING)
        session.add(run)
        session.flush()
        return run.id


def finish(factory: sessionmaker[Session], run_id: int, *, result: dict[str, Any] | None, parts: RunParts,
           error: str | None = None) -> None:
    """Record the run's end: failed if it raised (``error``) or any merchant's part failed."""
    failures = parts.failures
    if error is None and failures:
        error = f"{len(failures)} of {len(parts.parts)} merchants failed: " + "; ".join(
            f"merchant {t}: {p.error}" for t, p in sorted(failures.items()))
    with transaction(factory, write=True) as session:
        run = session.get_one(JobRun, run_id)
        run.finished_at = utcnow()
        run.outcome = FAILED if error else OK
        run.error = error[:ERROR_LENGTH] if error else None
        run.result = _plain(result)
        session.add_all([JobRunMerchant(run_id=run_id, tenant_id=t, outcome=p.outcome, error=p.error,
                                        result=_plain(p.result)) for t, p in sorted(parts.parts.items())])


def _plain(value: Any) -> Any:
    """JSON-ready: dates and other values as text."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else str(value)


# ---- reading --------------------------------------------------------------------------------------


def history(session: Session, *, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The operator's view: the newest runs (of one job) with everything they recorded."""
    query = select(JobRun).order_by(JobRun.id.desc()).limit(limit)
    runs = session.scalars(query if job is None else query.where(JobRun.job == job)).all()
    parts: dict[int, list[JobRunMerchant]] = {}
    for part in session.scalars(select(JobRunMerchant).where(JobRunMerchant.run_id.in_([r.id for r in runs]))
                                .order_by(JobRunMerchant.tenant_id)):
        parts.setdefault(part.run_id, []).append(part)
    return [_run_out(run) | {"error": run.error, "result": run.result,
                             "merchants": [{"tenant_id": p.tenant_id, "outcome": p.outcome, "error": p.error,
                                            "result": p.result} for p in parts.get(run.id, [])]}
            for run in runs]


class MerchantRunOut(BaseModel):
    id: int
    trigger: str = Field(description="schedule, queue (run now through the job queue) or cli")
    started_at: dt.datetime
    finished_at: dt.datetime | None
    outcome: str = Field(description="running, ok or failed, as far as this merchant is concerned")
    concerned: bool = Field(description="Whether the run did something for this merchant (then result is its part).")
    error: str | None = Field(description="Why this merchant's part failed.")
    result: dict[str, Any] | None = Field(description="What the run did for this merchant.")


class JobOut(BaseModel):
    name: str
    schedule: str = Field(description="When it runs on its own: a crontab line in UTC.")
    description: str
    last_runs: list[MerchantRunOut] = Field(description="Newest first.")


class JobsOut(BaseModel):
    jobs: list[JobOut]


def for_merchant(session: Session, tenant_id: int, *, runs: int = 5) -> JobsOut:
    """A merchant's view: every scheduled job with its newest runs, each showing that merchant's part."""
    out = []
    for job in SCHEDULE:
        rows = session.execute(
            select(JobRun, JobRunMerchant).outerjoin(
                JobRunMerchant, (JobRunMerchant.run_id == JobRun.id) & (JobRunMerchant.tenant_id == tenant_id))
            .where(JobRun.job == job.name).order_by(JobRun.id.desc()).limit(runs)).all()
        out.append(JobOut(name=job.name, schedule=job.crontab, description=job.description,
                          last_runs=[_merchant_run(session, run, part) for run, part in rows]))
    return JobsOut(jobs=out)


def _run_out(run: JobRun) -> dict[str, Any]:
    return {"id": run.id, "job": run.job, "trigger": run.trigger, "started_at": run.started_at,
            "finished_at": run.finished_at, "outcome": run.outcome}


def _merchant_run(session: Session, run: JobRun, part: JobRunMerchant | None) -> MerchantRunOut:
    out = _run_out(run)
    if part is not None:
        return MerchantRunOut(**(out | {"outcome": part.outcome}), concerned=True, error=part.error,
                              result=part.result)
    if run.outcome == FAILED and _failed_in_parts(session, run.id):
        out["outcome"] = OK  # another merchant's part failed; nothing of this merchant's did
    return MerchantRunOut(**out, concerned=False, error=None, result=None)


def _failed_in_parts(session: Session, run_id: int) -> bool:
    return session.scalar(select(JobRunMerchant.id).where(JobRunMerchant.run_id == run_id,
                                                          JobRunMerchant.outcome == FAILED).limit(1)) is not None
