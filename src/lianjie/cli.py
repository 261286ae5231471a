"""The ``lianjie`` command line: every command opens its own unit of work and commits once.

Commands that create something accept ``--json`` and then print the created object as one JSON
object on stdout (keys included, once), so shell scripts and CI jobs can drive lianjie.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from lianjie import jobs, migrate, wiring
from lianjie.app import serving_app
from lianjie.cli_analytics import clv_app, segments_app, traits_app, warehouse_app
from lianjie.cli_coalition import coalition_app
from lianjie.cli_coupons import coupons_app
from lianjie.cli_jobs import jobs_app
from lianjie.cli_membership import membership_app
from lianjie.cli_support import JsonFlag, TenantOpt, build, console, emit, err, unit_of_work
from lianjie.commerce import catalogue, csvfiles, importing
from lianjie.config import get_settings
from lianjie.crypto import get_cipher
from lianjie.db import engine_from_settings, make_session_factory, utcnow
from lianjie.demo import coalition as demo_coalition
from lianjie.demo import generate as demo_generate
from lianjie.demo import load as demo_load
from lianjie.errors import LianjieError
from lianjie.httpserver import ServerHttpProtocol
from lianjie.identity import merging
from lianjie.identity import service as identity_service
from lianjie.loyalty import programme as loyalty_programme_rules
from lianjie.loyalty import tiers as loyalty_tiers
from lianjie.tenants import keys, service
from lianjie.tenants.cli import audit_app
from lianjie.tenants.models import ApiKeyKind, Merchant, StaffRole, StoreType
from lianjie.tenants.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    MerchantCreate,
    MerchantOut,
    StaffCreate,
    StoreCreate,
    StoreOut,
)

app = typer.Typer(help="lianjie (连接): private-domain retail operations.", no_args_is_help=True)
db_app = typer.Typer(help="The operational database.", no_args_is_help=True)
tenant_app = typer.Typer(help="Merchants (tenants).", no_args_is_help=True)
store_app = typer.Typer(help="A merchant's stores.", no_args_is_help=True)
staff_app = typer.Typer(help="Staff and shopping guides (导购).", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys: write keys for event sources, admin keys with scopes.", no_args_is_help=True)
demo_app = typer.Typer(help="The generated demo retail world.", no_args_is_help=True)
catalogue_app = typer.Typer(help="Categories and products.", no_args_is_help=True)
orders_app = typer.Typer(help="Orders and refunds: import till (POS) exports.", no_args_is_help=True)
loyalty_app = typer.Typer(help="Points programme, expiry and tier evaluation jobs.", no_args_is_help=True)
identity_app = typer.Typer(help="OneID: look customers up, review and undo merges, block placeholder values.",
                           no_args_is_help=True)
for sub, name in ((db_app, "db"), (tenant_app, "tenant"), (store_app, "store"), (staff_app, "staff"),
                  (apikey_app, "apikey"), (catalogue_app, "catalogue"), (orders_app, "orders"),
                  (identity_app, "identity"), (loyalty_app, "loyalty"), (coupons_app, "coupons"),
                  (membership_app, "membership"), (coalition_app, "coalition"), (clv_app, "clv"), (jobs_app, "jobs"),
                  (warehouse_app, "warehouse"), (traits_app, "traits"), (segments_app, "segments"),
                  (demo_app, "demo"), (audit_app, "audit")):
    app.add_typer(sub, name=name)


@app.callback()
def _main() -> None:
    """lianjie (连接): private-domain retail operations."""
    wiring.install()


# ---- db / serve ------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations (creates the embedded SQLite database under ./var/ if needed)."""
    engine = engine_from_settings(get_settings())
    migrate.upgrade_engine(engine, revision)
    at = ", ".join(sorted(migrate.current_revisions(engine)))
    console.print(f"database at {at} ({engine.url.render_as_string()})")
    engine.dispose()


@db_app.command("status")
def db_status() -> None:
    """Show the database's migration revision next to the one this lianjie expects."""
    engine = engine_from_settings(get_settings())
    current, head = migrate.current_revisions(engine), migrate.head_revisions()
    console.print(f"database: {sorted(current) or 'empty'}; expected: {sorted(head)}")
    engine.dispose()
    if current != head:
        raise typer.Exit(1)


_WORKER_START_SECONDS = 120


@app.command()
def serve(host: Annotated[str | None, typer.Option(help="Default from LIANJIE_HOST or 127.0.0.1.")] = None,
          port: Annotated[int | None, typer.Option(help="Default from LIANJIE_PORT or 8000.")] = None,
          workers: Annotated[int | None, typer.Option(help="Server processes; default LIANJIE_WORKERS or 1.")] = None,
          ) -> None:
    """Serve the HTTP API (OpenAPI at /docs)."""
    settings = get_settings()
    engine = engine_from_settings(settings)
    if migrate.current_revisions(engine) != migrate.head_revisions():
        err.print("[red]the database is not at the latest migration[/red]: run `lianjie db upgrade` first")
        raise typer.Exit(1)
    engine.dispose()
    processes = workers or settings.workers
    # One job consumer for the whole server, in this process (with --workers N, the supervisor).
    consumer = jobs.start_embedded(settings) if settings.jobs_enabled else None
    try:
        if processes > 1:  # each worker process builds its own app from the same settings
            os.environ["LIANJIE_WORKERS"] = str(processes)  # --workers too: a worker knows it has company
            # uvicorn kills a worker that is not serving within timeout_worker_healthcheck (5 s by
            # default) and starts another; on a busy machine importing the app takes longer than
            # that, and the server restarted its workers forever without ever answering.
            uvicorn.run("lianjie.app:serving_app", factory=True, host=host or settings.host,
                        port=port or settings.port, workers=processes, http=ServerHttpProtocol, loop="uvloop",
                        timeout_worker_healthcheck=_WORKER_START_SECONDS)
        else:
            uvicorn.run(serving_app(), host=host or settings.host, port=port or settings.port,
                        http=ServerHttpProtocol, loop="uvloop")
    finally:
        if consumer is not None:
            consumer.stop(graceful=True)


# ---- tenants ---------------------------------------------------------------------------------------


@tenant_app.command("create")
def tenant_create(slug: Annotated[str, typer.Option(help="Short ascii name, e.g. 'huamei'.")],
                  name: Annotated[str, typer.Option(help="Display name, e.g. '华美生活'.")],
                  currency: str = "CNY", timezone: str = "Asia/Shanghai", as_json: JsonFlag = False) -> None:
    """Create a merchant (idempotent on the slug)."""
    data = build(MerchantCreate, slug=slug, name=name, currency=currency, timezone=timezone)
    with unit_of_work() as session:
        merchant, created = service.create_merchant(session, data)
        out = MerchantOut.model_validate(merchant)
    emit(as_json, out.model_dump(mode="json") | {"created": created},
         lambda: console.print(f"merchant {out.slug} (id {out.id}) {'created' if created else 'already there'}"))


@tenant_app.command("list")
def tenant_list(as_json: JsonFlag = False) -> None:
    """List merchants."""
    with unit_of_work() as session:
        rows = [MerchantOut.model_validate(m) for m in service.list_merchants(session)]
    table = Table("id", "slug", "name", "currency", "timezone")
    for m in rows:
        table.add_row(str(m.id), m.slug, m.name, m.currency, m.timezone)
    emit(as_json, {"merchants": [m.model_dump(mode="json") for m in rows]}, lambda: console.print(table))


@store_app.command("add")
def store_add(tenant: TenantOpt, code: Annotated[str, typer.Option(help="Store code, e.g. SH001.")],
              name: Annotated[str, typer.Option()], city: Annotated[str, typer.Option()],
              province: Annotated[str, typer.Option()],
              type: Annotated[StoreType, typer.Option(help="flagship, mall, community or online.")],
              opened_on: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
              as_json: JsonFlag = False) -> None:
    """Add a store to a merchant (idempotent on the store code)."""
    data = build(StoreCreate, code=code, name=name, city=city, province=province, type=type, opened_on=opened_on)
    with unit_of_work() as session:
        merchant = service.get_merchant(session, tenant)
        store, created = service.add_store(session, merchant.id, data)
        out = StoreOut.model_validate(store)
    emit(as_json, out.model_dump(mode="json") | {"tenant": merchant.slug, "created": created},
         lambda: console.print(f"store {out.code} {'added' if created else 'already there'}"))


@store_app.command("list")
def store_list(tenant: TenantOpt, as_json: JsonFlag = False) -> None:
    """List a merchant's stores."""
    with unit_of_work() as session:
        merchant = service.get_merchant(session, tenant)
        rows, _ = service.list_stores(session, merchant.id, limit=10_000)
        stores = [StoreOut.model_validate(s) for s in rows]
    table = Table("code", "name", "city", "province", "type", "status")
    for s in stores:
        table.add_row(s.code, s.name, s.city, s.province, s.type, s.status)
    emit(as_json, {"stores": [s.model_dump(mode="json") for s in stores]}, lambda: console.print(table))


@staff_app.command("add")
def staff_add(tenant: TenantOpt, staff_no: Annotated[str, typer.Option(help="Employee number.")],
              name: Annotated[str, typer.Option()],
              role: Annotated[StaffRole, typer.Option(help="owner, admin, store_manager or guide.")],
              store: Annotated[str | None, typer.Option(help="Store code (managers and guides).")] = None,
              wecom_userid: str | None = None, phone: str | None = None, as_json: JsonFlag = False) -> None:
    """Add a staff member or shopping guide (idempotent on the staff number)."""
    data = build(StaffCreate, staff_no=staff_no, name=name, role=role, store_code=store,
                 wecom_userid=wecom_userid, phone=phone)
    with unit_of_work() as session:
        merchant = service.get_merchant(session, tenant)
        staff, created = service.add_staff(session, merchant.id, data)
        out = service.staff_out(session, staff, reveal_phone=True)
    emit(as_json, out.model_dump(mode="json") | {"tenant": merchant.slug, "created": created},
         lambda: console.print(f"staff {out.staff_no} ({out.role}) {'added' if created else 'already there'}"))


@staff_app.command("list")
def staff_list(tenant: TenantOpt, store: str | None = None, as_json: JsonFlag = False) -> None:
    """List a merchant's staff, optionally of one store."""
    with unit_of_work() as session:
        merchant = service.get_merchant(session, tenant)
        rows, _ = service.list_staff(session, merchant.id, store_code=store, limit=100_000)
        people = [service.staff_out(session, s, reveal_phone=False) for s in rows]
    table = Table("staff_no", "name", "role", "store", "status")
    for p in people:
        table.add_row(p.staff_no, p.name, p.role, p.store_code or "", p.status)
    emit(as_json, {"staff": [p.model_dump(mode="json") for p in people]}, lambda: console.print(table))


# ---- API keys --------------------------------------------------------------------------------------


@apikey_app.command("create")
def apikey_create(tenant: TenantOpt, kind: Annotated[ApiKeyKind, typer.Option(help="write or admin.")],
                  scope: Annotated[list[str] | None, typer.Option(help="Admin scope; repeat or use commas.")] = None,
                  source: Annotated[str | None, typer.Option(help="Write keys: pos, miniprogram, web …")] = None,
                  name: Annotated[str | None, typer.Option(help="What the key is for.")] = None,
                  as_json: JsonFlag = False) -> None:
    """Create an API key; the key is printed once and cannot be shown again."""
    scopes = [s.strip() for item in scope or [] for s in item.split(",") if s.strip()]
    data = build(ApiKeyCreate, kind=kind, scopes=scopes, source=source,
                 name=name or (f"{source} events" if kind == ApiKeyKind.WRITE else "admin"))
    with unit_of_work() as session:
        merchant = service.get_merchant(session, tenant)
        key, secret = keys.create_api_key(session, merchant.id, data)
        out = ApiKeyCreated.model_validate({**ApiKeyOut.model_validate(key).model_dump(), "key": secret})

    def human() -> None:
        console.print(f"{out.kind} key {out.id} for {merchant.slug}; shown once, store it now:")
        sys.stdout.write(secret + "\n")

    emit(as_json, out.model_dump(mode="json") | {"tenant": merchant.slug}, human)


@apikey_app.command("list")
def apikey_list(tenant: TenantOpt, include_revoked: bool = False, as_json: JsonFlag = False) -> None:
    """List a merchant's API keys (never their secrets)."""
    with unit_of_work() as session:
        merchant = service.get_merchant(session, tenant)
        found, _ = keys.list_api_keys(session, merchant.id, include_revoked=include_revoked, limit=10**9)
        rows = [ApiKeyOut.model_validate(k) for k in found]
    table = Table("id", "kind", "name", "prefix", "source/scopes", "revoked")
    for k in rows:
        table.add_row(str(k.id), k.kind, k.name, k.prefix + "…", k.source or ",".join(k.scopes),
                      str(k.revoked_at or ""))
    emit(as_json, {"api_keys": [k.model_dump(mode="json") for k in rows]}, lambda: console.print(table))


@apikey_app.command("revoke")
def apikey_revoke(tenant: TenantOpt, key_id: Annotated[int, typer.Argument()], as_json: JsonFlag = False) -> None:
    """Revoke a key at once (safe to repeat)."""
    with unit_of_work() as session:
        merchant = service.get_merchant(session, tenant)
        out = ApiKeyOut.model_validate(keys.revoke_api_key(session, merchant.id, key_id))
    emit(as_json, out.model_dump(mode="json"), lambda: console.print(f"key {out.id} revoked at {out.revoked_at}"))


# ---- catalogue -------------------------------------------------------------------------------------


@catalogue_app.command("import")
def catalogue_import(tenant: TenantOpt,
                     categories: Annotated[Path | None, typer.Option(help="CSV: code,parent_code,name")] = None,
                     products: Annotated[Path | None, typer.Option(
                         help="CSV: sku,name,brand,category_code,price_fen,status")] = None,
                     as_json: JsonFlag = False) -> None:
    """Upsert categories and products from CSV (UTF-8 or GBK); bad rows are listed, good ones kept."""
    category_rows = list(csvfiles.read_rows(categories)) if categories else []
    product_rows = list(csvfiles.read_rows(products)) if products else []
    with unit_of_work() as session:
        merchant = service.get_merchant(session, tenant)
        summary = catalogue.import_catalogue(session, merchant.id, category_rows, product_rows)
    emit(as_json, summary.model_dump(), lambda: console.print(
        f"created {summary.created}, updated {summary.updated}, unchanged {summary.unchanged}, "
        f"rejected {len(summary.rejected)}" + "".join(f"\n  {r['kind']} line {r['line']}: {r['reason']}"
                                                      for r in summary.rejected[:20])))


# ---- loyalty ---------------------------------------------------------------------------------------


SetFile = Annotated[Path | None, typer.Option("--set", help="JSON file with the new rules.")]


@loyalty_app.command("programme")
def loyalty_programme(tenant: TenantOpt, set_file: SetFile = None) -> None:
    """Print the points programme's rules as JSON, or replace them with --set FILE."""
    with unit_of_work() as session:
        merchant = service.get_merchant(session, tenant)
        if set_file is not None:
            try:
                doc = json.loads(set_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                err.print(f"[red]invalid[/red] {set_file}: {escape(str(exc))}")
                raise typer.Exit(2) from exc
            config = loyalty_programme_rules.save(session, merchant.id, doc)
        else:
            config = loyalty_programme_rules.load(session, merchant.id)
    console.print_json(config.model_dump_json())


@loyalty_app.command("expire")
def loyalty_expire(tenant: TenantOpt, as_json: JsonFlag = False,
                   batch: Annotated[int, typer.Option(help="Accounts per transaction.")] = 500) -> None:
    """Expire lapsed points and cancel lapsed till holds (run daily; safe to run again at any time)."""
    with unit_of_work() as session:
        tenant_id = service.get_merchant(session, tenant).id
    engine = engine_from_settings(get_settings())
    try:
        with Progress(transient=True, console=err) as progress:
            task = progress.add_task("expiring", total=None)
            total = jobs.expire_merchant(make_session_factory(engine), tenant_id, utcnow(), batch=batch,
                                         on_batch=lambda run: progress.advance(task, run.accounts
                                                                               + run.holds_cancelled))
    finally:
        engine.dispose()
    result = {"expired": total.expired, "accounts": total.accounts, "holds_cancelled": total.holds_cancelled,
              "released": total.released}
    emit(as_json, result, lambda: console.print(
        f"expired {total.expired} points on {total.accounts} accounts; cancelled {total.holds_cancelled} lapsed "
        f"holds ({total.released} points back)"))


@loyalty_app.command("evaluate-tiers")
def loyalty_evaluate_tiers(tenant: TenantOpt, as_json: JsonFlag = False) -> None:
    """The periodic tier evaluation: upgrades, grace periods starting, downgrades after grace."""
    with unit_of_work() as session:
        merchant = service.get_merchant(session, tenant)
        config = loyalty_programme_rules.load(session, merchant.id)
        changed = loyalty_tiers.evaluate_all(session, config, merchant.id, utcnow())
    emit(as_json, {"changed": changed}, lambda: console.print(f"{changed} customers' tiers changed"))


# ---- orders ----------------------------------------------------------------------------------------


@orders_app.command("import")
def orders_import(file: Annotated[Path, typer.Argument(help="CSV export, optionally gzipped.", exists=True,
                                                       dir_okay=False)],
                  tenant: TenantOpt,
                  mapping: Annotated[str, typer.Option(help="A mapping TOML file, or a shipped one by name: "
                                                            "completejourney, demo.")],
                  rejects: Annotated[Path | None, typer.Option(
                      help="Where to write rejected rows and warnings. Default: "
                           "LIANJIE_VAR_DIR/rejects/FILE-TIME.rejects.csv")] = None,
                  as_json: JsonFlag = False) -> None:
    """Import orders and returns from a till export; bad orders go to a rejects CSV, good ones are kept.

    The rejects CSV (in the input's encoding) also lists skipped rows (quantity 0) and orders stored
    with a warning (a buyer phone that is not one), each with its line number, outcome and reason.

    Safe to run again: stored orders and refunds are recognised by their numbers and left unchanged.
    """
    with unit_of_work() as session:
        merchant = service.get_merchant(session, tenant)
        spec = importing.load_mapping(mapping)
    engine = engine_from_settings(get_settings())
    try:
        with Progress(console=err, disable=as_json) as progress:
            task = progress.add_task(f"importing {file.name}", total=None)
            report = importing.import_orders(
                make_session_factory(engine), merchant.id, file, spec, rejects=rejects,
                on_total=lambda n: progress.update(task, total=n), advance=lambda n: progress.advance(task, n))
    except (LianjieError, ValueError) as exc:
        err.print(f"[red]error[/red] {escape(str(getattr(exc, 'message', exc)))}")
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    summary = report.summary()
    table = Table("", "count", title=f"{file.name} -> {merchant.slug}")
    for label, key in (("rows read", "rows_read"), ("orders created", "orders_created"),
                       ("orders unchanged (imported before)", "orders_unchanged"),
                       ("refunds created", "refunds_created"), ("refunds unchanged", "refunds_unchanged"),
                       ("duplicate rows skipped", "duplicate_rows"), ("rows rejected", "rejected_rows"),
                       ("orders rejected", "rejected_orders"), ("rows skipped (quantity 0)", "skipped_rows"),
                       ("orders stored with a warning", "warned_rows"), ("stores created", "stores_created"),
                       ("products loaded", "products_loaded")):
        table.add_row(label, f"{summary[key]:,}")

    def human() -> None:
        console.print(table)
        rate = summary["rows_read"] / summary["seconds"] if summary["seconds"] else 0
        console.print(f"{summary['seconds']:.1f} s, {rate:,.0f} rows/s")
        if report.rejects_file:
            console.print(f"rejected, skipped and warned rows with their line and reason: {report.rejects_file}")

    emit(as_json, summary, human)


# ---- identity --------------------------------------------------------------------------------------


@identity_app.command("find")
def identity_find(tenant: TenantOpt,
                  identifier: Annotated[list[str], typer.Argument(help="type=value, e.g. phone=13912345678")],
                  as_json: JsonFlag = False) -> None:
    """Show the customer holding every given identifier (personal values shown: run by the operator)."""
    wanted = {}
    for item in identifier:
        type_, sep, value = item.partition("=")
        if not sep:
            err.print(f"[red]invalid[/red] {escape(repr(item))}: write type=value")
            raise typer.Exit(2)
        wanted[type_] = value
    with unit_of_work() as session:
        merchant = service.get_merchant(session, tenant)
        roots = sorted(identity_service.find_by_identifiers(session, get_cipher(), merchant.id, wanted))
        found = [identity_service.get_profile(session, get_cipher(), merchant.id, r, reveal_pii=True) for r in roots]
    payload = {"profiles": [p.model_dump(mode="json") for p in found]}

    def human() -> None:
        if not found:
            console.print("no customer holds these identifiers")
        for p in found:
            console.print(f"customer {p.id} (merged: {p.merged_ids or '-'}), {p.event_count} events, "
                          f"last seen {p.last_seen_at}")
            for ident in p.identifiers:
                console.print(f"  {ident.type:<22} {ident.value}")

    emit(as_json, payload, human)


@identity_app.command("suspicious")
def identity_suspicious(tenant: TenantOpt, days: int = 7, min_merges: int = 5, as_json: JsonFlag = False) -> None:
    """Values that merged many profiles lately (a new cashier placeholder, a shared device …)."""
    with unit_of_work() as session:
        merchant = service.get_merchant(session, tenant)
        rows = merging.suspicious_values(session, get_cipher(), merchant.id, days=days, min_merges=min_merges)
    table = Table("type", "value", "merges", "first", "last")
    for r in rows:
        table.add_row(r.type, r.value, str(r.merges), str(r.first_merge_at), str(r.last_merge_at))
    emit(as_json, {"suspicious": [r.model_dump(mode="json") for r in rows]}, lambda: console.print(table))


@identity_app.command("block")
def identity_block(tenant: TenantOpt, type_: Annotated[str, typer.Option("--type", help="Identifier type or '*'.")],
                   value: Annotated[str, typer.Option(help="The value, as customers' data carries it.")],
                   undo_merges: Annotated[bool, typer.Option(help="Undo the merges it caused.")] = True,
                   as_json: JsonFlag = False) -> None:
    """Block a value from linking anyone from now on, and undo the merges it caused."""
    with unit_of_work() as session:
        merchant = service.get_merchant(session, tenant)
        undone = merging.block_value(session, get_cipher(), merchant.id, type_, value, undo_merges=undo_merges)
        ids = [m.id for m in undone]
    emit(as_json, {"blocked": True, "undone_merges": ids},
         lambda: console.print(f"blocked; {len(ids)} merge(s) undone"))


@identity_app.command("unmerge")
def identity_unmerge(tenant: TenantOpt, merge_id: Annotated[int, typer.Argument()],
                     reason: str = "operator", as_json: JsonFlag = False) -> None:
    """Undo one merge: the profiles it moved become their own customer again, with their events."""
    with unit_of_work() as session:
        merchant = service.get_merchant(session, tenant)
        merge = merging.unmerge(session, merchant.id, merge_id, reason)
        out = {"id": merge.id, "survivor_id": merge.survivor_id, "merged_id": merge.merged_id,
               "moved_ids": merge.moved_ids, "undone_at": str(merge.undone_at)}
    emit(as_json, out, lambda: console.print(f"merge {merge_id} undone: profile {out['merged_id']} stands alone"))


# ---- demo ------------------------------------------------------------------------------------------

ScaleOpt = Annotated[str, typer.Option(help="tiny, small (~5k customers), medium (100k) or large (1M).")]


def _default_demo_dir(scale: str, seed: int) -> Path:
    return get_settings().resolved_var_dir / "demo" / f"{scale}-seed{seed}"


@demo_app.command("generate")
def demo_generate_cmd(scale: ScaleOpt = "small", seed: int = 42,
                      out: Annotated[Path | None, typer.Option(help="Default: ./var/demo/SCALE-seedSEED")] = None,
                      end_date: Annotated[str, typer.Option(help="Last day of the 12 months.")] = "2026-10-31",
                      workers: Annotated[int | None, typer.Option(help="Processes; default: all cores.")] = None,
                      as_json: JsonFlag = False) -> None:
    """Generate a deterministic demo retail world as files (world.json, catalogue, orders CSV, events NDJSON)."""
    if scale not in demo_generate.SCALES:
        err.print(f"[red]invalid[/red] --scale: choose one of {', '.join(demo_generate.SCALES)}")
        raise typer.Exit(2)
    target = out or _default_demo_dir(scale, seed)
    report = demo_generate.generate_world(target, scale=scale, seed=seed, end_date=dt.date.fromisoformat(end_date),
                                          workers=workers, show_progress=not as_json)
    summary = {"out_dir": str(report.out_dir), "scale": report.scale, "seed": report.seed,
               "merchants": report.merchants, "stores": report.stores, "staff": report.staff,
               "products": report.products, "customers": report.customers, "orders": report.orders,
               "order_lines": report.order_lines, "refunds": report.refunds, "events": report.events,
               "seconds": round(report.seconds, 2), "rows_per_second": round(report.rows_per_second)}
    emit(as_json, summary, lambda: console.print(
        f"generated {report.customers:,} customers, {report.orders:,} orders ({report.order_lines:,} lines), "
        f"{report.events:,} events in {report.seconds:.1f} s: {report.rows_per_second:,.0f} rows/s -> {target}"))


@demo_app.command("load")
def demo_load_cmd(scale: ScaleOpt = "small", seed: int = 42,
                  path: Annotated[Path | None, typer.Option("--dir", help="A generated world directory.")] = None,
                  if_empty: Annotated[bool, typer.Option(help="Do nothing if any merchant exists.")] = False,
                  as_json: JsonFlag = False) -> None:
    """Load the demo world (generating it first if needed) through lianjie's public service paths."""
    settings = get_settings()
    world_dir = path or _default_demo_dir(scale, seed)
    with unit_of_work() as session:
        if if_empty and (session.scalar(select(func.count()).select_from(Merchant)) or 0) > 0:
            emit(as_json, {"loaded": False, "reason": "database not empty"},
                 lambda: console.print("database already has merchants; demo not loaded"))
            return
    if not (world_dir / "world.json").exists():
        demo_generate.generate_world(world_dir, scale=scale, seed=seed, show_progress=not as_json)
    world = demo_load.read_world(world_dir)
    with unit_of_work() as session, Progress(console=err, disable=as_json) as progress:
        task = progress.add_task("loading merchants", total=len(world["merchants"]))
        loads = []
        for spec in world["merchants"]:
            loads.append(demo_load.load_merchant(session, spec))
            demo_load.load_catalogue(session, world_dir, world, loads[-1])
            progress.advance(task)
    keys_path = settings.resolved_var_dir / "demo-keys.json"
    demo_load.save_keys(keys_path, loads)
    events = _load_demo_events(world_dir, world, loads, quiet=as_json)
    orders = _load_demo_orders(world_dir, world, loads, quiet=as_json)
    coalitions = _load_demo_coalitions(world_dir, world, loads, quiet=as_json)
    demo_load.save_keys(keys_path, [demo_load.MerchantLoad(c.operator, c.operator_id, c.created, keys=c.keys)
                                    for c in coalitions])
    payload = {"loaded": True, "world": str(world_dir), "keys_file": str(keys_path), "events": events,
               "orders": orders, "coalitions": [c.summary() for c in coalitions],
               "merchants": [{"slug": m.slug, "id": m.tenant_id, "created": m.created, "stores": m.stores,
                              "staff": m.staff, "products": m.products, "keys": m.keys} for m in loads]}

    def human() -> None:
        for m in loads:
            console.print(f"{m.slug}: {m.stores} stores, {m.staff} staff, {m.products} products"
                          f"{' (new)' if m.created else ''}")
        console.print(f"events: {events['accepted']:,.0f} stored, {events['duplicates']:,.0f} already there, "
                      f"{events['merges']:,.0f} merges, {events['rate']:,.0f} events/s")
        console.print(f"orders: {orders['orders_created']:,} stored, {orders['orders_unchanged']:,} already there, "
                      f"{orders['refunds_created']:,} refunds, {orders['rate']:,.0f} rows/s")
        for c in coalitions:
            console.print(f"coalition {c.code} (run by {c.operator}, members {', '.join(c.members)}): {c.cards:,} "
                          f"cards, {c.earned:,} points earned, {c.redeemed:,} redeemed, {c.bought:,} bought")
        console.print(f"API keys for the demo merchants are in {keys_path}")

    emit(as_json, payload, human)


def _load_demo_events(world_dir: Path, world: dict[str, Any], loads: list[demo_load.MerchantLoad],
                      *, quiet: bool) -> dict[str, float]:
    """Send every merchant's event files through ingestion, with a progress bar by bytes."""
    files = [(m.tenant_id, source, path)
             for m in loads for source, path in demo_load.event_files(world_dir, world, m.slug)]
    totals: dict[str, float] = {"accepted": 0, "duplicates": 0, "merges": 0, "rejected": 0}
    engine = engine_from_settings(get_settings())
    factory = make_session_factory(engine)
    started = time.perf_counter()
    with Progress(console=err, disable=quiet) as progress:
        task = progress.add_task("loading events", total=sum(path.stat().st_size for _, _, path in files))
        for tenant_id, source, path in files:
            result = demo_load.load_events(factory, tenant_id, source, path,
                                           advance=lambda n: progress.advance(task, n))
            totals["accepted"] += result.accepted
            totals["duplicates"] += result.duplicates
            totals["merges"] += result.merges
            totals["rejected"] += len(result.rejected)
    engine.dispose()
    seconds = time.perf_counter() - started
    totals["seconds"] = round(seconds, 2)
    totals["rate"] = round((totals["accepted"] + totals["duplicates"]) / seconds) if seconds else 0.0
    return totals


def _load_demo_coalitions(world_dir: Path, world: dict[str, Any], loads: list[demo_load.MerchantLoad],
                          *, quiet: bool) -> list[demo_coalition.CoalitionLoad]:
    """The world's coalitions: operator, members' terms, cards and points (after the orders, whose
    members' profiles the cards link)."""
    tenant_ids = {m.slug: m.tenant_id for m in loads}
    engine = engine_from_settings(get_settings())
    try:
        with Progress(console=err, disable=quiet) as progress:
            task = progress.add_task("loading the coalition", total=None)
            loaded = []
            for spec in world.get("coalitions", []):
                started = time.perf_counter()
                loaded.append(demo_coalition.load_coalition(make_session_factory(engine), world_dir, world, spec,
                                                            tenant_ids, advance=lambda n: progress.advance(task, n)))
                loaded[-1].seconds = round(time.perf_counter() - started, 2)
            return loaded
    finally:
        engine.dispose()


def _load_demo_orders(world_dir: Path, world: dict[str, Any], loads: list[demo_load.MerchantLoad],
                      *, quiet: bool) -> dict[str, float]:
    """Every merchant's order files through the POS import, with a progress bar by bytes of CSV."""
    totals: dict[str, float] = dict.fromkeys(("rows_read", "orders_created", "orders_unchanged",
                                              "refunds_created", "refunds_unchanged"), 0)
    engine = engine_from_settings(get_settings())
    started = time.perf_counter()
    try:
        with Progress(console=err, disable=quiet) as progress:
            rows = sum(max(0, sum(1 for _ in path.open("rb")) - 1)
                       for m in loads for path in demo_load.order_files(world_dir, world, m.slug))
            task = progress.add_task("loading orders", total=rows)
            for m in loads:
                report = demo_load.load_orders(make_session_factory(engine), world_dir, world, m,
                                               advance=lambda n: progress.advance(task, n))
                for key in totals:
                    totals[key] += getattr(report, key)
    finally:
        engine.dispose()
    seconds = time.perf_counter() - started
    totals["seconds"] = round(seconds, 2)
    totals["rate"] = round(totals["rows_read"] / seconds) if seconds else 0.0
    return totals


def main() -> None:
    """The ``lianjie`` command; a database it cannot reach is one line on stderr and exit 1, not a traceback."""
    try:
        app()
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        err.print(f"[red]cannot use the database[/red]: {escape(reason)} (LIANJIE_DATABASE_URL sets where it is)")
        sys.exit(1)
