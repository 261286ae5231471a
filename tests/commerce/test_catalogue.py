"""The catalogue: category tree and products, as an ERP feed and an operator use them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from lianjie.commerce import catalogue, csvfiles
from lianjie.commerce.schemas import CategoryIn, ProductIn
from lianjie.errors import ValidationFailed
from tests.endpoints import Endpoint
from tests.factories import bearer, make_admin_key, make_merchant, make_write_key

ENDPOINTS = [
    Endpoint("GET", "/api/v1/categories", "catalogue:read"),
    Endpoint("PUT", "/api/v1/categories/C9", "catalogue:write", {"code": "C9", "name": "新品"},
             route="/api/v1/categories/{code}"),
    Endpoint("GET", "/api/v1/products", "catalogue:read"),
    Endpoint("POST", "/api/v1/products", "catalogue:write", {"sku": "NEW-1", "name": "新品", "price_fen": 100}),
    Endpoint("GET", "/api/v1/products/SKU-1", "catalogue:read", route="/api/v1/products/{sku}"),
    Endpoint("PATCH", "/api/v1/products/SKU-1", "catalogue:write", {"price_fen": 1},
             route="/api/v1/products/{sku}"),
]


def tree(db: Session, tenant_id: int) -> None:
    for code, name, parent in [("C1", "服装", None), ("C11", "女装", "C1"), ("C111", "连衣裙", "C11"),
                               ("C2", "美妆", None)]:
        catalogue.upsert_category(db, tenant_id, CategoryIn(code=code, name=name, parent_code=parent))
    catalogue.upsert_product(db, tenant_id, ProductIn(sku="SKU-1", name="碎花连衣裙", category_code="C111",
                                                      price_fen=39900))
    catalogue.upsert_product(db, tenant_id, ProductIn(sku="SKU-2", name="口红", category_code="C2",
                                                      price_fen=19900))


@pytest.fixture
def world(db: Session) -> dict[str, Any]:
    a, b = make_merchant(db, "huamei"), make_merchant(db, "yuedong", "悦动运动")
    tree(db, a.id)
    out = {"a": a, "admin_a": make_admin_key(db, a), "admin_b": make_admin_key(db, b),
           "write_a": make_write_key(db, a)}
    db.commit()
    return out


def test_tree_levels_and_subtree_listing(db: Session, world: dict[str, Any]) -> None:
    levels = {c.code: c.level for c in catalogue.list_categories(db, world["a"].id)}
    assert levels == {"C1": 1, "C2": 1, "C11": 2, "C111": 3}
    rows, total = catalogue.list_products(db, world["a"].id, category_code="C1")
    assert total == 1
    assert rows[0].sku == "SKU-1"


def test_the_tree_stays_whole(db: Session, world: dict[str, Any]) -> None:
    tenant = world["a"].id
    with pytest.raises(ValidationFailed, match="send parents first"):
        catalogue.upsert_category(db, tenant, CategoryIn(code="X", name="x", parent_code="NOPE"))
    with pytest.raises(ValidationFailed, match="own ancestor"):
        catalogue.upsert_category(db, tenant, CategoryIn(code="C1", name="服装", parent_code="C111"))
    with pytest.raises(ValidationFailed, match="does not exist"):
        catalogue.upsert_product(db, tenant, ProductIn(sku="S", name="s", category_code="NOPE", price_fen=1))


def test_a_resent_feed_reports_what_changed(db: Session, world: dict[str, Any]) -> None:
    tenant = world["a"].id
    same = ProductIn(sku="SKU-2", name="口红", category_code="C2", price_fen=19900)
    assert catalogue.upsert_product(db, tenant, same)[1] == "unchanged"
    assert catalogue.upsert_product(db, tenant, same.model_copy(update={"price_fen": 17900}))[1] == "updated"
    assert catalogue.get_product(db, tenant, "SKU-2").price_fen == 17900


def test_csv_import_in_gbk_keeps_good_rows_and_reports_bad_ones(db: Session, world: dict[str, Any],
                                                                tmp_path: Path) -> None:
    products = tmp_path / "products.csv"
    products.write_bytes("sku,name,brand,category_code,price_fen,status\n"
                         "G-1,保温杯,青屿,C2,9900,active\n"
                         "G-2,坏价格,,C2,-5,active\n"
                         "G-3,没有类目,,ZZ,100,active\n"
                         "G-4,下架商品,,,2990,inactive\n".encode("gbk"))
    summary = catalogue.import_catalogue(db, world["a"].id, [], csvfiles.read_rows(products))
    assert (summary.created, len(summary.rejected)) == (2, 2)
    assert [r["line"] for r in summary.rejected] == [3, 4]
    assert str(summary.rejected[0]["reason"]).startswith("price_fen")
    assert "'ZZ' does not exist" in str(summary.rejected[1]["reason"])
    assert catalogue.get_product(db, world["a"].id, "G-1").name == "保温杯"
    again = catalogue.import_catalogue(db, world["a"].id, [], csvfiles.read_rows(products))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)


def test_api_upserts_and_validates(client: TestClient, world: dict[str, Any]) -> None:
    admin = bearer(world["admin_a"])
    body = {"sku": "SKU-9", "name": "运动袜", "category_code": "C2", "price_fen": 2990}
    assert client.post("/api/v1/products", json=body, headers=admin).status_code == 201
    assert client.post("/api/v1/products", json=body, headers=admin).status_code == 200
    bad = client.post("/api/v1/products", json=body | {"price_fen": -1}, headers=admin)
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "body.price_fen"
    mismatch = client.put("/api/v1/categories/C7", json={"code": "C8", "name": "x"}, headers=admin)
    assert mismatch.status_code == 422
    found = client.get("/api/v1/products", params={"q": "袜"}, headers=admin).json()
    assert [p["sku"] for p in found["items"]] == ["SKU-9"]
    assert client.get("/api/v1/products/NOPE", headers=admin).status_code == 404


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.id for e in ENDPOINTS])
def test_keys_scopes_and_isolation(client: TestClient, db: Session, world: dict[str, Any],
                                   endpoint: Endpoint) -> None:
    def call(secret: str | None) -> Any:
        return client.request(endpoint.method, endpoint.path, json=endpoint.body,
                              headers=bearer(secret) if secret else {})

    assert call(None).status_code == 401
    assert call("lja_wrong").status_code == 401
    assert call(world["write_a"]).status_code == 403
    reader = make_admin_key(db, world["a"], "catalogue:read")
    db.commit()
    assert call(reader).status_code == (403 if endpoint.scope.endswith("write") else 200)
    other = call(world["admin_b"])
    if "SKU-1" in endpoint.path:
        assert other.status_code == 404
    elif endpoint.method == "GET":
        body = other.json()
        assert (body["items"] if isinstance(body, dict) else body) == []
    assert catalogue.get_product(db, world["a"].id, "SKU-1").price_fen == 39900
    assert len(catalogue.list_categories(db, world["a"].id)) == 4
