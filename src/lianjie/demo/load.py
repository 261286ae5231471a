"""Load a generated demo world through lianjie's public service paths (never by writing tables).

What can be loaded grows with the product: today merchants, stores, staff, API keys, the catalogue,
the events, sent through the same ingestion pipeline as ``/v1/batch`` (validation, de-duplication by
messageId, identity resolution), and the orders and refunds, through the POS import with the shipped
``demo`` mapping (the same order services as the API). Loading twice stores nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.orm import Session, sessionmaker

from lianjie.commerce import catalogue, csvfiles, importing
from lianjie.crypto import get_cipher
from lianjie.db import transaction, utcnow
from lianjie.identity.recording import Source, store
from lianjie.ingest.service import BatchResult, check_messages
from lianjie.tenants import keys, service
from lianjie.tenants.models import ApiKeyKind
from lianjie.tenants.schemas import ApiKeyCreate, MerchantCreate, StaffCreate, StoreCreate

DEMO_ADMIN_KEY_NAME = "demo admin"
EVENT_BATCH = 500


@dataclass
class MerchantLoad:
    slug: str
    tenant_id: int
    created: bool
    stores: int = 0
    staff: int = 0
    products: int = 0
    keys: dict[str, str] = field(default_factory=dict)


def read_world(world_dir: Path) -> dict[str, Any]:
    path = world_dir / "world.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run `lianjie demo generate` first")
    world: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if world.get("format") != 1:
        raise ValueError(f"{path}: unsupported demo world format {world.get('format')!r}")
    return world


def load_catalogue(session: Session, world_dir: Path, world: dict[str, Any], load: MerchantLoad) -> None:
    """The merchant's category tree and products, through the catalogue service (safe to repeat)."""
    files = world.get("files", {}).get("catalogue", {}).get(load.slug)
    if not files:
        return
    products = list(csvfiles.read_rows(world_dir / files["products"]))
    summary = catalogue.import_catalogue(session, load.tenant_id,
                                         csvfiles.read_rows(world_dir / files["categories"]), products)
    if summary.rejected:
        raise ValueError(f"{load.slug}: catalogue rows rejected: {summary.rejected[:3]}")
    load.products = len(products)


def load_merchant(session: Session, spec: dict[str, Any]) -> MerchantLoad:
    """Create one merchant with its stores, staff and, the first time only, its demo keys."""
    merchant, created = service.create_merchant(session, MerchantCreate(
        slug=spec["slug"], name=spec["name"], currency=spec["currency"], timezone=spec["timezone"]))
    result = MerchantLoad(slug=merchant.slug, tenant_id=merchant.id, created=created)
    for store_spec in spec["stores"]:
        service.add_store(session, merchant.id, StoreCreate.model_validate(store_spec))
        result.stores += 1
    for person in spec["staff"]:
        service.add_staff(session, merchant.id, StaffCreate.model_validate(person))
        result.staff += 1
    if created:
        result.keys = _create_demo_keys(session, merchant.id, spec.get("sources", []))
    return result


def _create_demo_keys(session: Session, tenant_id: int, sources: list[str]) -> dict[str, str]:
    """An all-scopes admin key for trying the API, and one write key per event source."""
    _, admin = keys.create_api_key(session, tenant_id, ApiKeyCreate(
        kind=ApiKeyKind.ADMIN, name=DEMO_ADMIN_KEY_NAME, scopes=[keys.ALL]))
    created = {"admin": admin}
    for source in sources:
        _, secret = keys.create_api_key(session, tenant_id, ApiKeyCreate(
            kind=ApiKeyKind.WRITE, name=f"demo {source}", source=source))
        created[f"write:{source}"] = secret
    return created


def save_keys(path: Path, loads: list[MerchantLoad]) -> None:
    """Keep the demo's keys where the operator can find them (mode 0600, under var/, never in git)."""
    existing: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    for load in loads:
        if load.keys:
            existing[load.slug] = load.keys
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(existing, indent=2, ensure_ascii=False) + "\n")
    path.chmod(0o600)


def event_files(world_dir: Path, world: dict[str, Any], slug: str) -> list[tuple[str, Path]]:
    """``(source, path)`` of every event file of a merchant."""
    by_source: dict[str, list[str]] = world.get("files", {}).get("events", {}).get(slug, {})
    return [(source, world_dir / rel) for source, paths in sorted(by_source.items()) for rel in paths]


def load_events(factory: sessionmaker[Session], tenant_id: int, source: str, path: Path,
                advance: Callable[[int], None] | None = None) -> BatchResult:
    """Send one NDJSON file through ingestion in batches; ``advance`` gets the bytes consumed."""
    total = BatchResult()
    batch: list[Any] = []
    size = 0

    def flush() -> None:
        received = utcnow()
        good, bad, _ = check_messages(batch, implied_type=None, batch_sent_at=None, received_at=received)
        total.rejected.extend(bad)
        with transaction(factory, write=True) as session:
            result = store(session, get_cipher(), Source(tenant_id, source), good, received)
        total.accepted += result.accepted
        total.duplicates += result.duplicates
        total.merges += result.merges
        total.conflicts += result.conflicts
        if advance:
            advance(size)

    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                batch.append(orjson.loads(line))
            size += len(line)
            if len(batch) >= EVENT_BATCH:
                flush()
                batch, size = [], 0
    if batch or size:
        flush()
    return total


def order_files(world_dir: Path, world: dict[str, Any], slug: str) -> list[Path]:
    return [world_dir / rel for rel in world.get("files", {}).get("orders", {}).get(slug, [])]


def load_orders(factory: sessionmaker[Session], world_dir: Path, world: dict[str, Any], load: MerchantLoad,
                advance: Callable[[int], None] | None = None) -> importing.ImportReport:
    """A merchant's order files through the POS import (mapping ``demo``); any rejected row is an error."""
    spec = next(m for m in world["merchants"] if m["slug"] == load.slug)
    mapping = importing.load_mapping("demo").model_copy(
        update={"buyer_constants": {"wechat_appid": spec["wechat"]["miniprogram_appid"]}})
    total = importing.ImportReport()
    for path in order_files(world_dir, world, load.slug):
        report = importing.import_orders(factory, load.tenant_id, path, mapping, advance=advance,
                                         rejects=path.with_name(path.name + ".rejects.csv"))
        if report.rejects:
            raise ValueError(f"{path}: {report.rejected_rows} order rows rejected, see {report.rejects_file}")
        for key in ("rows_read", "orders_created", "orders_unchanged", "refunds_created", "refunds_unchanged"):
            setattr(total, key, getattr(total, key) + getattr(report, key))
    return total
