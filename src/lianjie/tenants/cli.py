"""``lianjie audit``: the audit log from the command line (the tenants domain's own commands)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from lianjie.cli_support import JsonFlag, TenantOpt, console, emit, unit_of_work
from lianjie.tenants import audit, service
from lianjie.tenants.schemas import AuditEntryOut

audit_app = typer.Typer(help="The audit log: who changed keys, programme, plans, coupons, coalition, identities.",
                        no_args_is_help=True)


@audit_app.command("list")
def audit_list(tenant: TenantOpt,
               action: Annotated[str | None, typer.Option(help="An action or its prefix, e.g. 'apikey.'.")] = None,
               actor: Annotated[str | None, typer.Option(help="e.g. key:12 or cli:root.")] = None,
               limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
               offset: Annotated[int, typer.Option(min=0)] = 0,
               as_json: JsonFlag = False) -> None:
    """The merchant's latest admin writes, newest first."""
    with unit_of_work() as session:
        merchant = service.get_merchant(session, tenant)
        found, total = audit.list_entries(session, merchant.id, action=action, actor=actor, limit=limit,
                                          offset=offset)
        rows = [AuditEntryOut.model_validate(r) for r in found]
    table = Table("id", "at (UTC)", "actor", "action", "target", "change", title=f"{len(rows)} of {total}")
    for row in rows:
        change = json.dumps({"before": row.before, "after": row.after}, ensure_ascii=False, default=str)
        table.add_row(str(row.id), row.at.strftime("%Y-%m-%d %H:%M:%S"), row.actor, row.action, row.target,
                      change if len(change) <= 120 else change[:117] + "…")
    emit(as_json, {"entries": [r.model_dump(mode="json") for r in rows], "total": total},
         lambda: console.print(table))
