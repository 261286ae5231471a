"""CLI: the background jobs (their schedule, one run now, a stand-alone worker)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from lianjie import jobruns, jobs
from lianjie.cli_support import JsonFlag, console, emit, err, unit_of_work
from lianjie.config import get_settings

jobs_app = typer.Typer(help="Background jobs (expiry, tiers, memberships, coalition months, warehouse sync, traits): "
                            "the schedule, runs and a worker.", no_args_is_help=True)


# ---- jobs ------------------------------------------------------------------------------------------


@jobs_app.command("list")
def jobs_list(as_json: JsonFlag = False) -> None:
    """The background jobs and when they run (UTC); `lianjie serve` runs them unless LIANJIE_JOBS_ENABLED=false."""
    table = Table("job", "schedule (UTC crontab)", "what")
    for job in jobs.JOBS.values():
        table.add_row(job.name, job.crontab, job.description)
    emit(as_json, {"jobs": [{"name": j.name, "schedule": j.crontab, "description": j.description}
                            for j in jobs.JOBS.values()]}, lambda: console.print(table))


@jobs_app.command("run")
def jobs_run(name: Annotated[str, typer.Argument(help="A job from `lianjie jobs list`.")],
             as_json: JsonFlag = False) -> None:
    """Run one job now, in this process (each is safe to run again at any time)."""
    if name not in jobs.JOBS:
        err.print(f"[red]error[/red] no job {escape(repr(name))}; jobs: {', '.join(jobs.JOBS)}")
        raise typer.Exit(2)
    try:
        with err.status(f"running {name}"):
            result = jobs.run_job(name)
    except jobs.JobFailed as exc:
        err.print(f"[red]failed[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    emit(as_json, result, lambda: console.print(f"{name}: {result}"))


@jobs_app.command("history")
def jobs_history(job: Annotated[str | None, typer.Option(help="Only this job's runs.")] = None,
                 limit: Annotated[int, typer.Option(min=1, max=500, help="Runs shown, newest first.")] = 20,
                 as_json: JsonFlag = False) -> None:
    """The newest job runs: start, end, outcome, error and result, with each merchant's part (every merchant)."""
    if job is not None and job not in jobs.JOBS:
        err.print(f"[red]error[/red] no job {escape(repr(job))}; jobs: {', '.join(jobs.JOBS)}")
        raise typer.Exit(2)
    with unit_of_work() as session:
        runs = jobruns.history(session, job=job, limit=limit)
    table = Table("run", "job", "trigger", "started (UTC)", "took", "outcome", "result or error")
    for run in runs:
        took = "" if run["finished_at"] is None else f"{(run['finished_at'] - run['started_at']).total_seconds():.1f} s"
        table.add_row(str(run["id"]), run["job"], run["trigger"], f"{run['started_at']:%Y-%m-%d %H:%M:%S}", took,
                      run["outcome"], escape(run["error"] or str(run["result"])))
    emit(as_json, {"runs": runs}, lambda: console.print(table))


@jobs_app.command("worker")
def jobs_worker(workers: Annotated[int, typer.Option(min=1, help="Worker threads.")] = 1) -> None:
    """A job consumer on its own, for servers started with LIANJIE_JOBS_ENABLED=false (Ctrl-C stops it)."""
    queue = jobs.build_queue(get_settings())
    jobs.consumer(queue, workers=workers).run()


