"""Loading the generated world goes through the services and can be repeated safely."""

from __future__ import annotations

import csv
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lianjie.commerce.models import Refund
from lianjie.crypto import get_cipher
from lianjie.demo import coalition, load
from lianjie.demo.generate import generate_world
from lianjie.identity import service as service_of_identity
from lianjie.identity.models import Consent
from lianjie.loyalty.coalition.models import (
    Coalition,
    CoalitionCard,
    CoalitionCardLink,
    CoalitionEntry,
    CoalitionMember,
    CoalitionOperation,
)
from lianjie.tenants import keys, service
from lianjie.tenants.models import Merchant
from tests.factories import bearer


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    generate_world(out, scale="tiny", seed=7)
    return out


def test_world_loads_completely_and_reloads_as_a_no_op(db: Session, tiny_world: Path) -> None:
    world = load.read_world(tiny_world)
    first = [load.load_merchant(db, spec) for spec in world["merchants"]]
    assert all(m.created and m.keys["admin"].startswith("lja_") for m in first)
    for spec, loaded in zip(world["merchants"], first, strict=True):
        stores, total_stores = service.list_stores(db, loaded.tenant_id, limit=500)
        assert total_stores == len(spec["stores"]) == loaded.stores
        assert {s.code for s in stores} == {s["code"] for s in spec["stores"]}
        _, total_staff = service.list_staff(db, loaded.tenant_id, limit=500)
        assert total_staff == len(spec["staff"])
        writes = {k.source for k in keys.list_api_keys(db, loaded.tenant_id)[0] if k.kind == "write"}
        assert writes == set(spec["sources"])
    second = [load.load_merchant(db, spec) for spec in world["merchants"]]
    assert not any(m.created or m.keys for m in second)
    assert [m.tenant_id for m in second] == [m.tenant_id for m in first]


def test_demo_keys_work_against_the_api(db: Session, client: TestClient, tiny_world: Path,
                                        tmp_path: Path) -> None:
    world = load.read_world(tiny_world)
    loads = [load.load_merchant(db, spec) for spec in world["merchants"]]
    db.commit()
    keys_file = tmp_path / "demo-keys.json"
    load.save_keys(keys_file, loads)
    saved: dict[str, Any] = json.loads(keys_file.read_text())
    for spec in world["merchants"]:
        response = client.get("/api/v1/merchant", headers=bearer(saved[spec["slug"]]["admin"]))
        assert response.json()["name"] == spec["name"]


def test_missing_or_foreign_world_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load.read_world(tmp_path)
    (tmp_path / "world.json").write_text('{"format": 99}')
    with pytest.raises(ValueError, match="format"):
        load.read_world(tmp_path)


def test_orders_load_through_the_pos_import_and_reload_unchanged(db: Session, tiny_world: Path,
                                                                 session_factory: sessionmaker[Session]) -> None:
    world = load.read_world(tiny_world)
    loads = [load.load_merchant(db, spec) for spec in world["merchants"]]
    for loaded in loads:
        load.load_catalogue(db, tiny_world, world, loaded)
    db.commit()
    sales: set[tuple[str, str]] = set()
    refunds: set[tuple[str, str]] = set()
    for loaded in loads:
        for path in load.order_files(tiny_world, world, loaded.slug):
            for row in csv.DictReader(path.open(encoding="utf-8")):
                (refunds if row["order_type"] == "refund" else sales).add((loaded.slug, row["order_no"]))
    first = [load.load_orders(session_factory, tiny_world, world, m) for m in loads]
    assert sum(r.orders_created for r in first) == len(sales)
    assert sum(r.refunds_created for r in first) == len(refunds)
    assert db.scalar(select(func.count()).select_from(Refund)) == len(refunds)
    again = [load.load_orders(session_factory, tiny_world, world, m) for m in loads]
    assert (sum(r.orders_created + r.refunds_created for r in again),
            sum(r.orders_unchanged for r in again)) == (0, len(sales))


def _coalition_rows(db: Session) -> dict[str, int]:
    return {model.__tablename__: db.scalar(select(func.count()).select_from(model)) or 0
            for model in (Coalition, CoalitionMember, CoalitionCard, CoalitionCardLink, CoalitionOperation,
                          CoalitionEntry, Consent, Merchant)}


def test_the_coalition_loads_with_cards_and_points_and_reloads_unchanged(
        db: Session, client: TestClient, tiny_world: Path, session_factory: sessionmaker[Session]) -> None:
    world = load.read_world(tiny_world)
    loads = [load.load_merchant(db, spec) for spec in world["merchants"]]
    for loaded in loads:
        load.load_catalogue(db, tiny_world, world, loaded)
    db.commit()
    for loaded in loads:
        load.load_orders(session_factory, tiny_world, world, loaded)
    tenant_ids = {m.slug: m.tenant_id for m in loads}
    (spec,) = world["coalitions"]
    first = coalition.load_coalition(session_factory, tiny_world, world, spec, tenant_ids)
    assert first.created
    assert first.keys["admin"].startswith("lja_")
    operator = bearer(first.keys["admin"])
    described = client.get(f"/api/v1/coalitions/{first.code}", headers=operator).json()
    assert described["operator"] == first.operator
    assert first.operator not in tenant_ids  # a merchant of its own runs it
    terms = {m["merchant"]: (m["funding"], Decimal(m["issue_price_fen_per_point"])) for m in described["members"]}
    assert terms == {spec["members"][0]: ("postpaid", Decimal(10)), spec["members"][1]: ("prepaid", Decimal(12))}

    # Cards: only for members who agreed, consent recorded; a member of both merchants has one card at both.
    links = db.execute(select(CoalitionCardLink.tenant_id, CoalitionCardLink.card_id, CoalitionCardLink.profile_id)
                       ).all()
    assert first.cards == len({card for _, card, _ in links}) > 0
    assert any(n == 2 for n in Counter(card for _, card, _ in links).values())
    for tenant_id, _, profile_id in links:
        consent = service_of_identity.get_profile(db, get_cipher(), tenant_id, profile_id, reveal_pii=False).consent
        assert ("coalition", "all", True) in {(c.purpose, c.channel, c.granted) for c in consent}
    # Points: the last month's statement has points issued and redeemed, money both ways, netting to 0.
    period = world["end"][:7]
    statement = client.get(f"/api/v1/coalitions/{first.code}/periods/{period}/statement", headers=operator).json()
    members = [line for line in statement["lines"] if line["party"] == "merchant"]
    assert sum(line["points_issued"] for line in members) > 0
    assert sum(line["owed_fen"] for line in members) > 0
    assert statement["net_total_fen"] == 0
    assert first.redeemed > 0
    assert first.earned == db.scalar(select(func.sum(CoalitionEntry.points)).where(CoalitionEntry.kind == "issue"))

    before = _coalition_rows(db)
    again = coalition.load_coalition(session_factory, tiny_world, world, spec, tenant_ids)
    assert not again.created
    assert again.keys == {}
    assert _coalition_rows(db) == before
    assert (again.cards, again.earned, again.redeemed, again.bought) == (first.cards, first.earned, first.redeemed,
                                                                         first.bought)
