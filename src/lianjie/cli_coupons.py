"""CLI: coupons (batches of printable codes)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from lianjie.cli_support import JsonFlag, TenantOpt, console, emit, err, unit_of_work
from lianjie.loyalty.coupons import issuing as coupon_issuing
from lianjie.loyalty.coupons.schemas import MAX_CODES_PER_ISSUE, IssueIn
from lianjie.tenants import service

coupons_app = typer.Typer(help="Coupons: batches of printable codes.", no_args_is_help=True)


@coupons_app.command("codes")
def coupons_codes(template: Annotated[str, typer.Argument(help="The coupon template's code.")], tenant: TenantOpt,
                  count: Annotated[int, typer.Option(min=1, max=1_000_000, help="How many codes.")],
                  out: Annotated[Path, typer.Option(help="The CSV file to write.", dir_okay=False)],
                  key: Annotated[str | None, typer.Option(
                      help="Idempotency key: the same key again writes the same codes, issuing none.")] = None,
                  as_json: JsonFlag = False) -> None:
    """Issue COUNT unbound codes of a template for print or QR and write them to a CSV (code, qr_payload)."""
    key = key or f"cli-{uuid.uuid4().hex[:16]}"
    per_issue = MAX_CODES_PER_ISSUE
    with unit_of_work() as session, Progress(console=err, disable=as_json) as progress:
        merchant = service.get_merchant(session, tenant)
        task = progress.add_task(f"issuing {template}", total=count)
        rows: list[tuple[str, str]] = []
        for i, start in enumerate(range(0, count, per_issue)):
            n = min(per_issue, count - start)
            request = IssueIn(idempotency_key=f"{key}:{i}", count=n)
            issued = coupon_issuing.issue(session, merchant.id, template, request,
                                          on_progress=lambda done: progress.advance(task, done))
            if issued.replayed:
                progress.advance(task, n)
            rows.extend(coupon_issuing.codes_csv_rows(session, merchant.id, issued.issue.id)[1])
    with out.open("w", newline="", encoding="utf-8") as handle:  # after the commit: a rerun with --key rewrites it
        coupon_issuing.write_codes_csv(rows, handle)
    emit(as_json, {"template": template, "count": len(rows), "file": str(out), "key": key},
         lambda: console.print(f"{len(rows):,} codes of {template} in {out} (idempotency key {key})"))


