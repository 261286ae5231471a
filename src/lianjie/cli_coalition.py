"""``lianjie coalition …``: the coalition operator's commands (create, members' terms, closing a
month, statements). Closing expires the month's lapsed lots in batches of their own transactions
(with a progress bar), then stores the statement in one transaction."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.cli_support import JsonFlag, build, console, emit, err, unit_of_work
from lianjie.errors import NotFound
from lianjie.loyalty.coalition import points, settlement, setup
from lianjie.loyalty.coalition.models import Coalition
from lianjie.loyalty.coalition.schemas import CoalitionIn, MemberIn, StatementOut
from lianjie.tenants.service import get_merchant

coalition_app = typer.Typer(help="Coalition points (联盟积分): members, monthly settlement.", no_args_is_help=True)
CoalitionOpt = Annotated[str, typer.Option("--coalition", "-c", help="The coalition's code.")]
PeriodArg = Annotated[str, typer.Argument(help="A month, YYYY-MM, in the coalition's time zone.")]


def _operator_access(session: Session, code: str) -> setup.Access:
    """The CLI acts as the coalition's operator (whoever runs the server runs the coalition)."""
    coalition = session.scalar(select(Coalition).where(Coalition.code == code))
    if coalition is None:
        raise NotFound(f"no coalition {code!r}", code="coalition_not_found", field="coalition")
    return setup.access(session, code, coalition.operator_tenant_id, operator=True)


@coalition_app.command("create")
def coalition_create(operator: Annotated[str, typer.Option(help="The operating merchant's slug.")],
                     code: Annotated[str, typer.Option(help="Short lowercase name, e.g. 'tpoint'.")],
                     name: Annotated[str, typer.Option(help="Display name.")], timezone: str = "Asia/Shanghai",
                     expiry_days: Annotated[int, typer.Option(help="Points expire after; 0: never.")] = 365,
                     as_json: JsonFlag = False) -> None:
    """Start a coalition (idempotent on the code)."""
    data = build(CoalitionIn, code=code, name=name, timezone=timezone, expiry_days=expiry_days or None)
    with unit_of_work() as session:
        coalition, created = setup.create(session, get_merchant(session, operator).id, data)
        out = setup.describe(session, _operator_access(session, coalition.code))
    emit(as_json, out.model_dump(mode="json") | {"created": created},
         lambda: console.print(f"coalition {out.code} {'created' if created else 'already there'}"))


@coalition_app.command("member")
def coalition_member(coalition: CoalitionOpt, merchant: Annotated[str, typer.Option(help="Merchant slug.")],
                     issue_price: Annotated[Decimal, typer.Option(help="Fen per point awarded, e.g. 10.5.")],
                     redemption_value: Annotated[Decimal, typer.Option(help="Fen per point redeemed.")],
                     funding: str = "postpaid", role: str = "partner", as_json: JsonFlag = False) -> None:
    """Add a member merchant or change its terms."""
    data = build(MemberIn, issue_price_fen_per_point=issue_price, redemption_value_fen_per_point=redemption_value,
                 funding=funding, role=role)
    with unit_of_work() as session:
        member, created = setup.put_member(session, _operator_access(session, coalition), merchant, data)
        out = setup.member_out(member, merchant)
    emit(as_json, out.model_dump(mode="json") | {"created": created},
         lambda: console.print(f"{merchant} in {coalition}: issue {out.issue_price_fen_per_point} fen, redemption "
                               f"{out.redemption_value_fen_per_point} fen per point, {out.funding}"))


@coalition_app.command("close")
def coalition_close(period: PeriodArg, coalition: CoalitionOpt, as_json: JsonFlag = False,
                    batch: Annotated[int, typer.Option(help="Lots expired per transaction.")] = 500) -> None:
    """Close a finished month: expire its lapsed lots, store its statement (closing again changes nothing)."""
    expired = 0
    with Progress(console=err, disable=as_json) as progress:
        task = progress.add_task(f"expiring lots lapsed in {period}", total=None)
        while True:
            with unit_of_work() as session:
                acc = _operator_access(session, coalition)
                _, end = settlement.bounds(acc.coalition, period)
                done = points.expire_due(session, acc.coalition, end - dt.timedelta(microseconds=1), limit=batch)
            expired += done
            progress.update(task, advance=done)
            if not done:
                break
        progress.add_task(f"closing {period}", total=1)
        with unit_of_work() as session:
            acc = _operator_access(session, coalition)
            _, closed = settlement.close(session, acc.coalition, period, closed_by="cli")
            out = settlement.statement(session, acc, period)
    emit(as_json, out.model_dump(mode="json") | {"closed_now": closed, "expired_points": expired},
         lambda: _print_statement(out, "closed now" if closed else "was already closed"))


@coalition_app.command("statement")
def coalition_statement(period: PeriodArg, coalition: CoalitionOpt, as_json: JsonFlag = False) -> None:
    """Print a month's statement (a preview while open) and, once closed, check it against the ledger."""
    with unit_of_work() as session:
        acc = _operator_access(session, coalition)
        out = settlement.statement(session, acc, period)
        problems = settlement.recompute(session, acc.coalition, period) if out.status == "closed" else []
    note = "open: a preview" if out.status == "open" else (
        "reproduced from the ledger" if not problems else "DIFFERS from the ledger: " + "; ".join(problems))
    emit(as_json, out.model_dump(mode="json") | {"reproduced": not problems}, lambda: _print_statement(out, note))
    if problems:
        raise typer.Exit(1)


def _print_statement(out: StatementOut, note: str) -> None:
    table = Table(title=f"{out.coalition} {out.period} ({out.status}; {note}), {out.currency} fen")
    for column in ("party", "points issued", "redeemed", "expired", "bought", "owed", "due", "net"):
        table.add_column(column, justify="left" if column == "party" else "right")
    for line in out.lines:
        table.add_row(f"{line.merchant} ({line.party})", f"{line.points_issued:,}", f"{line.points_redeemed:,}",
                      f"{line.points_expired:,}", f"{line.points_purchased:,}", f"{line.owed_fen:,}",
                      f"{line.due_fen:,}", f"{line.net_fen:,}")
    console.print(table)
    console.print(f"net over all parties: {out.net_total_fen} fen")
