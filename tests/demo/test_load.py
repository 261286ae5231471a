"""Loading the generated world goes through the services and can be repeated safely."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from lianjie.demo import load
from lianjie.demo.generate import generate_world
from lianjie.tenants import keys, service
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
        writes = {k.source for k in keys.list_api_keys(db, loaded.tenant_id) if k.kind == "write"}
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
