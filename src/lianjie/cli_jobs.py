"""CLI: the background jobs (their schedule, one run now, a stand-alone worker)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from lianjie import jobs
from lianjie.cli_support import JsonFlag, console, emit, err
from lianjie.config import get_settings

jobs_app = typer.Typer(help="Background jobs (expiry, tiers, warehouse sync, traits): the schedule and a worker.",
                       no_args_is_help=True)


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
    with err.status(f"running {name}"):
        result = jobs.run_job(name)
    emit(as_json, result, lambda: console.print(f"{name}: {result}"))


@jobs_app.command("worker")
def jobs_worker(workers: Annotated[int, typer.Option(min=1, help="Worker threads.")] = 1) -> None:
    """A job consumer on its own, for servers started with LIANJIE_JOBS_ENABLED=false (Ctrl-C stops it)."""
    queue = jobs.build_queue(get_settings())
    jobs.consumer(queue, workers=workers).run()


