"""CLI: the analytics warehouse (sync, rebuild), customer traits (compute), customer lifetime value
(fit on a file) and segment previews."""

from __future__ import annotations

import csv
import datetime as dt
import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from lianjie import jobs
from lianjie.cli_support import JsonFlag, TenantOpt, console, emit, err, unit_of_work
from lianjie.config import get_settings
from lianjie.db import engine_from_settings, make_session_factory
from lianjie.tenants import service as tenants
from lianjie.warehouse import connection as warehouse_connection
from lianjie.warehouse import sync as warehouse_sync

if TYPE_CHECKING:
    from lianjie.audience.clv import ClvFit

warehouse_app = typer.Typer(help="The analytics warehouse (DuckDB): sync from the operational store, rebuild.",
                            no_args_is_help=True)
traits_app = typer.Typer(help="Customer traits: RFM, lifecycle stage and CLV, computed in the warehouse.",
                         no_args_is_help=True)
clv_app = typer.Typer(help="Customer lifetime value: BG/NBD and Gamma-Gamma models.", no_args_is_help=True)
segments_app = typer.Typer(help="Segment rules (人群圈选) against the warehouse.", no_args_is_help=True)


# ---- warehouse -------------------------------------------------------------------------------------


def _warehouse_run(rebuild: bool, as_json: bool) -> None:
    settings = get_settings()
    engine = engine_from_settings(settings)
    try:
        with Progress(console=err, disable=as_json, transient=True) as progress:
            tasks: dict[str, Any] = {}

            def advance(table: str, rows: int) -> None:
                if table not in tasks:
                    tasks[table] = progress.add_task(table, total=None)
                progress.advance(tasks[table], rows)

            report = warehouse_sync.run(make_session_factory(engine), settings, rebuild_all=rebuild,
                                        progress=advance)
    finally:
        engine.dispose()
    payload = {"rows": report.rows, "erased_profiles": report.erased_profiles, "seconds": round(report.seconds, 3),
               "warehouse": warehouse_connection.warehouse_url(settings)}
    table = Table("table", "rows copied", title=f"warehouse {'rebuilt' if rebuild else 'synced'} "
                                                f"in {report.seconds:.1f} s")
    for name, rows in report.rows.items():
        table.add_row(name, f"{rows:,}")
    emit(as_json, payload, lambda: console.print(table))


@warehouse_app.command("sync")
def warehouse_sync_cmd(as_json: JsonFlag = False) -> None:
    """Copy new and changed rows into the warehouse (also runs every minute inside `lianjie serve`)."""
    _warehouse_run(False, as_json)


@warehouse_app.command("rebuild")
def warehouse_rebuild_cmd(as_json: JsonFlag = False) -> None:
    """Recreate the warehouse from the operational store."""
    _warehouse_run(True, as_json)


# ---- traits ----------------------------------------------------------------------------------------


@traits_app.command("compute")
def traits_compute(merchant: Annotated[str | None, typer.Option(
                       "--merchant", "-t", help="Merchant slug or id; default every merchant.")] = None,
                   as_of: Annotated[dt.datetime | None, typer.Option(
                       formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"],
                       help="As of this UTC time (e.g. the end of a historical data set); default now.")] = None,
                   as_json: JsonFlag = False) -> None:
    """Recompute RFM, lifecycle stages and CLV from the warehouse as it is now (run `lianjie warehouse
    sync` first for the latest orders; the daily compute-traits job does both)."""
    tenant_id = None
    if merchant is not None:
        with unit_of_work() as session:
            tenant_id = tenants.get_merchant(session, merchant).id
    settings = get_settings()
    engine = engine_from_settings(settings)
    try:
        with Progress(console=err, disable=as_json, transient=True) as progress:
            task = progress.add_task("computing traits", total=None)
            result = jobs.compute_traits_for(make_session_factory(engine), settings, merchant=tenant_id,
                                             as_of=as_of.replace(tzinfo=dt.UTC) if as_of else None,
                                             on_merchant=lambda slug, n: progress.update(
                                                 task, advance=1, description=f"{slug}: {n:,} customers"))
    finally:
        engine.dispose()
    emit(as_json, result, lambda: _show_traits(result))


def _show_traits(result: dict[str, Any]) -> None:
    if "skipped" in result:
        console.print(f"nothing computed: {result['skipped']} (run `lianjie warehouse sync`)")
        return
    table = Table("merchant", "customers", "stages", "at risk / lapsed after (days)", "CLV",
                  title=f"traits as of {result['computed_at']}")
    for run in result["merchants"]:
        t = run["thresholds"]
        stages = ", ".join(f"{k} {v:,}" for k, v in sorted(run["stages"].items()))
        fitted = "fitted" if run["clv"] else f"not fitted ({run['repeat_buyers']} repeat buyers)"
        table.add_row(run["slug"], f"{run['customers']:,}", stages,
                      f"{t['at_risk_days']} / {t['lapsed_days']} ({t['source']})", fitted)
    console.print(table)


# ---- clv -------------------------------------------------------------------------------------------


class PurchaseFormat(StrEnum):
    CDNOW = "cdnow"
    CSV = "csv"


@clv_app.command("fit")
def clv_fit(transactions: Annotated[Path, typer.Argument(help="Purchases: the CDNOW file or a CSV.", exists=True,
                                                         dir_okay=False)],
            calibration_end: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"],
                                                                 help="Last day of the calibration period.")],
            format_: Annotated[PurchaseFormat, typer.Option("--format")] = PurchaseFormat.CSV,
            holdout_end: Annotated[dt.datetime | None, typer.Option(
                formats=["%Y-%m-%d"], help="Last day of the holdout check; default the file's last purchase.")] = None,
            customer_column: Annotated[str, typer.Option(help="csv: the customer id column.")] = "customer_id",
            date_column: Annotated[str, typer.Option(help="csv: the purchase date column.")] = "date",
            amount_column: Annotated[str, typer.Option(help="csv: the amount column (major unit).")] = "amount",
            date_format: Annotated[str | None, typer.Option(help="csv: strptime format, e.g. %d/%m/%Y.")] = None,
            encoding: Annotated[str, typer.Option(help="csv: auto, utf-8 or gbk.")] = "auto",
            predictions: Annotated[Path | None, typer.Option(help="Write per-customer predictions to a CSV.")] = None,
            days: Annotated[int, typer.Option(min=1, help="Prediction horizon in days.")] = 90,
            as_json: JsonFlag = False) -> None:
    """Fit BG/NBD and Gamma-Gamma on a purchase history by maximum likelihood, and check the fit on
    the purchases after the calibration period."""
    # Imported here, not at the top: SciPy takes about a second to import, which every other
    # command (and every till script calling the CLI) would otherwise pay.
    from lianjie.audience import clv, purchase_files

    try:
        if format_ is PurchaseFormat.CDNOW:
            purchases = purchase_files.read_cdnow(transactions)
        else:
            purchases = purchase_files.read_csv(transactions, customer=customer_column, date=date_column,
                                                amount=amount_column, date_format=date_format, encoding=encoding)
        if not purchases:
            raise ValueError(f"{transactions.name}: no purchases")
        end = calibration_end.date()
        check_end = holdout_end.date() if holdout_end else max(p.day for p in purchases)
        with err.status("fitting BG/NBD and Gamma-Gamma"):
            fit = clv.fit(purchases, end, check_end)
    except ValueError as exc:
        err.print(f"[red]error[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    if predictions is not None:
        _write_clv_predictions(predictions, clv.predict(fit, days))
    emit(as_json, fit.as_dict(), lambda: _show_clv_fit(fit, predictions))


def _write_clv_predictions(path: Path, rows: dict[str, dict[str, float]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["customer", "p_alive", "expected_purchases", "expected_spend", "expected_value"])
        for customer, row in rows.items():
            writer.writerow([customer, *(f"{row[k]:.6f}" for k in ("p_alive", "expected_purchases",
                                                                   "expected_spend", "expected_value"))])


def _show_clv_fit(fit: ClvFit, predictions: Path | None) -> None:
    b = fit.bgnbd
    table = Table("model", "parameters", "log-likelihood", title=f"{len(fit.summaries):,} customers, "
                  f"{fit.repeat_transactions:,} repeat purchases in calibration")
    table.add_row("BG/NBD", f"r={b.r:.4f} alpha={b.alpha:.4f} a={b.a:.4f} b={b.b:.4f}", f"{b.log_likelihood:,.2f}")
    if fit.gamma_gamma is not None:
        g = fit.gamma_gamma
        table.add_row("Gamma-Gamma", f"p={g.p:.4f} q={g.q:.4f} gamma={g.gamma:.4f}", f"{g.log_likelihood:,.2f}")
    console.print(table)
    if fit.holdout is not None:
        h = fit.holdout
        console.print(f"holdout, {h.weeks:.1f} weeks: {h.predicted:,.1f} repeat purchases predicted, "
                      f"{h.actual:,} made ({h.error:+.1%})")
    if predictions is not None:
        console.print(f"per-customer predictions: {predictions}")




# ---- segments --------------------------------------------------------------------------------------


@segments_app.command("preview")
def segments_preview(rule_file: Annotated[Path, typer.Argument(help="A segment rule as JSON.", exists=True,
                                                               dir_okay=False)],
                     tenant: TenantOpt, sample: int = 10, as_json: JsonFlag = False) -> None:
    """How many customers a rule matches now, and a sample of them (a bad rule names its JSON path)."""
    from lianjie.audience.segments import service as segments

    raw = json.loads(rule_file.read_text(encoding="utf-8"))
    con = warehouse_connection.connect(get_settings())
    try:
        with unit_of_work() as session:
            merchant = tenants.get_merchant(session, tenant)
            result = segments.preview(con, segments.scope(session, merchant.id, backend=con.name), raw, sample)
    finally:
        con.disconnect()
    table = Table("customer", "rfm group", "lifecycle", "orders", "spent (fen)", "traits",
                  title=f"{result.count:,} customers as of {result.as_of:%Y-%m-%d %H:%M} UTC")
    for p in result.sample:
        table.add_row(str(p.customer_id), p.rfm_group or "", p.lifecycle_stage or "", str(p.frequency or ""),
                      str(p.monetary_fen or ""), json.dumps(p.traits, ensure_ascii=False))
    emit(as_json, result.model_dump(mode="json"), lambda: console.print(table))
