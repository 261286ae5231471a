"""``lianjie membership …``: the daily paid membership jobs (automatic renewal, grace and lapse) and KPIs."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.progress import Progress

from lianjie.cli_support import JsonFlag, TenantOpt, console, emit, err, unit_of_work
from lianjie.db import utcnow
from lianjie.loyalty.membership import kpis, lifecycle, plans
from lianjie.loyalty.membership.terms import local_date
from lianjie.tenants import service

membership_app = typer.Typer(help="Paid membership (付费会员): renewal and lapse jobs, KPIs.", no_args_is_help=True)
DayOpt = Annotated[dt.datetime | None, typer.Option("--date", help="The merchant's local day; default today.",
                                                    formats=["%Y-%m-%d"])]
BatchOpt = Annotated[int, typer.Option(help="Memberships per transaction.")]


def _today(tenant: str, day: dt.datetime | None) -> tuple[int, dt.date]:
    with unit_of_work() as session:
        tenant_id = service.get_merchant(session, tenant).id
        return tenant_id, day.date() if day else local_date(utcnow(), plans.zone_of(session, tenant_id))


@membership_app.command("renew-due")
def renew_due(tenant: TenantOpt, day: DayOpt = None, batch: BatchOpt = 200, as_json: JsonFlag = False) -> None:
    """Renew auto-renewing memberships that are due (records each charge request; safe to run again)."""
    tenant_id, today = _today(tenant, day)
    renewed = 0
    with Progress(transient=True, console=err, disable=as_json) as progress:
        task = progress.add_task("renewing", total=None)
        while True:
            with unit_of_work() as session:
                done = lifecycle.renew_due(session, tenant_id, today, limit=batch)
            renewed += done
            progress.update(task, advance=done)
            if done == 0:
                break
    emit(as_json, {"date": str(today), "renewed": renewed},
         lambda: console.print(f"{renewed} memberships renewed automatically for {today}"))


@membership_app.command("lapse")
def lapse(tenant: TenantOpt, day: DayOpt = None, batch: BatchOpt = 500, as_json: JsonFlag = False) -> None:
    """Put terms past their end into grace and lapse those past grace (run daily; safe to run again)."""
    tenant_id, today = _today(tenant, day)
    graced = lapsed = 0
    with Progress(transient=True, console=err, disable=as_json) as progress:
        task = progress.add_task("lapsing", total=None)
        while True:
            with unit_of_work() as session:
                into_grace, gone = lifecycle.lapse(session, tenant_id, today, limit=batch)
            graced, lapsed = graced + into_grace, lapsed + gone
            progress.update(task, advance=into_grace + gone)
            if into_grace + gone == 0:
                break
    emit(as_json, {"date": str(today), "grace": graced, "lapsed": lapsed},
         lambda: console.print(f"{graced} memberships entered grace, {lapsed} lapsed ({today})"))


@membership_app.command("kpis")
def show_kpis(tenant: TenantOpt, day: DayOpt = None, months: int = 12, as_json: JsonFlag = False) -> None:
    """Paid members today and the renewal rate over the trailing months."""
    tenant_id, today = _today(tenant, day)
    with unit_of_work() as session:
        members = kpis.paid_members(session, tenant_id, today)
        rate = kpis.renewal_rate(session, tenant_id, today, months)
    payload = {"members": members.model_dump(mode="json"), "renewal": rate.model_dump(mode="json")}
    emit(as_json, payload, lambda: console.print(
        f"{members.paid_members} paid members ({members.in_grace} in grace) on {today}; renewal rate "
        f"{'n/a' if rate.rate is None else f'{rate.rate:.1%}'} ({rate.renewed}/{rate.due} due "
        f"{rate.window_from} .. {rate.window_to})"))
