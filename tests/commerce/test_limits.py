"""Every input fits its column: at its bound a value is stored, one past it is a 422 naming the field.

PostgreSQL enforces VARCHAR(n) and 32-bit INTEGER, where a value the schema let through failed as a
500; SQLite stores anything, so the same requests run there to show the answers are the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from lianjie.commerce import importing
from lianjie.commerce.models import Product
from lianjie.errors import ValidationFailed

ORDER: dict[str, Any] = {"order_no": "SO-1", "ordered_at": "2026-03-08T14:30:00+08:00", "store_code": "SH001",
                         "channel": "offline", "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_fen": 30000}]}


# (method, path, body at the bound, the same one past it, the field named)
EDGES: list[tuple[str, str, dict[str, Any], dict[str, Any], str]] = [
    ("PUT", "/api/v1/categories/{code}", {"code": "C" * 40, "name": "新品"}, {"code": "C" * 41, "name": "新品"},
     "body.code"),
    ("PUT", "/api/v1/categories/C9", {"code": "C9", "name": "类" * 100}, {"code": "C9", "name": "类" * 101},
     "body.name"),
    ("PUT", "/api/v1/categories/C9", {"code": "C9", "name": "新品", "parent_code": "C1"},
     {"code": "C9", "name": "新品", "parent_code": "C" * 41}, "body.parent_code"),
    ("POST", "/api/v1/products", {"sku": "S" * 64, "name": "品" * 200, "brand": "牌" * 100, "price_fen": 10**11},
     {"sku": "S1", "name": "x", "brand": "牌" * 101, "price_fen": 1}, "body.brand"),
    ("POST", "/api/v1/products", {"sku": "S1", "name": "x", "price_fen": 3_000_000_000},
     {"sku": "S1", "name": "x", "price_fen": 10**11 + 1}, "body.price_fen"),
    ("POST", "/api/v1/products", {"sku": "S1", "name": "x", "category_code": "C1", "price_fen": 1},
     {"sku": "S1", "name": "x", "category_code": "C" * 41, "price_fen": 1}, "body.category_code"),
    ("PATCH", "/api/v1/products/SKU-1", {"brand": "牌" * 100, "price_fen": 10**11}, {"brand": "牌" * 101},
     "body.brand"),
    ("POST", "/api/v1/orders", ORDER | {"buyer": {"wechat_appid": "a" * 64, "wechat_openid": "o" * 128}},
     ORDER | {"buyer": {"wechat_appid": "a" * 65, "wechat_openid": "o"}}, "body.buyer.wechat_appid"),
    ("POST", "/api/v1/orders", ORDER | {"buyer": {"wechat_appid": "wx1", "wechat_openid": "o" * 128}},
     ORDER | {"buyer": {"wechat_appid": "wx1", "wechat_openid": "o" * 129}}, "body.buyer.wechat_openid"),
    ("POST", "/api/v1/orders", ORDER | {"order_no": "N" * 64, "payment_method": "p" * 32,
                                        "buyer": {"user_id": "u" * 200, "member_no": "m" * 200}},
     ORDER | {"payment_method": "p" * 33}, "body.payment_method"),
    ("POST", "/api/v1/orders", ORDER | {"lines": [{"sku": "SKU-1", "quantity": 1_000_000, "unit_price_fen": 1}]},
     ORDER | {"lines": [{"sku": "SKU-1", "quantity": 1_000_001, "unit_price_fen": 1}]}, "body.lines.0.quantity"),
    ("POST", "/api/v1/orders/SO-1/refunds", {"refund_no": "R" * 64, "reason": "因" * 200},
     {"refund_no": "R1", "reason": "因" * 201}, "body.reason"),
]


@pytest.mark.parametrize(("method", "path", "fits", "too_big", "field"), EDGES,
                         ids=[f"{e[0]} {e[1]} {e[4]}" for e in EDGES])
def test_a_value_at_its_bound_is_stored_and_one_past_it_is_a_422(
        client: TestClient, shop: dict[str, Any], method: str, path: str, fits: dict[str, Any],
        too_big: dict[str, Any], field: str) -> None:
    if "refunds" in path:
        assert client.post("/api/v1/orders", json=ORDER, headers=shop["h"]).status_code == 201
    refused = client.request(method, path.format(code=too_big.get("code")), json=too_big, headers=shop["h"])
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == field
    stored = client.request(method, path.format(code=fits.get("code")), json=fits, headers=shop["h"])
    assert stored.status_code in (200, 201), stored.text
    for key, value in fits.items():
        if key in stored.json() and key not in ("lines", "buyer", "ordered_at"):
            assert stored.json()[key] == value


def test_a_price_above_32_bits_is_stored_and_read_back(client: TestClient, db: Session,
                                                       shop: dict[str, Any]) -> None:
    body = {"sku": "CAR-1", "name": "新能源汽车", "price_fen": 25_980_000_000}
    assert client.post("/api/v1/products", json=body, headers=shop["h"]).status_code == 201
    assert client.get("/api/v1/products/CAR-1", headers=shop["h"]).json()["price_fen"] == 25_980_000_000
    db.expire_all()
    assert db.query(Product).filter_by(sku="CAR-1").one().price_fen == 25_980_000_000


def test_import_settings_and_product_files_fit_the_columns(db: Session, session_factory: sessionmaker[Session],
                                                           shop: dict[str, Any], tmp_path: Path) -> None:
    mapping = tmp_path / "m.toml"
    base = ('[time]\ncolumn = "t"\n[columns]\norder_no = "no"\nsku = "sku"\nquantity = "qty"\n'
            'unit_price = "price"\n')
    mapping.write_text(f'source = "{"s" * 41}"\n' + base, encoding="utf-8")
    with pytest.raises(ValidationFailed, match="source"):
        importing.load_mapping(mapping)
    mapping.write_text('source = "pos"\n' + base + '[products]\nfile = "p.csv"\nsku = "sku"\nname = ["name"]\n'
                       'brand = "brand"\ncategory = "cat"\nprice_fen = 100000000001\n', encoding="utf-8")
    with pytest.raises(ValidationFailed, match="price_fen"):
        importing.load_mapping(mapping)
    mapping.write_text(mapping.read_text(encoding="utf-8").replace("100000000001", "100"), encoding="utf-8")
    (tmp_path / "p.csv").write_text(f"sku,name,brand,cat\nNEW-1,{'名' * 250},{'牌' * 150},{'类' * 150}\n",
                                    encoding="utf-8")
    (tmp_path / "o.csv").write_text("no,t,sku,qty,price\nO-1,2026-03-01T10:00:00,NEW-1,1,100\n", encoding="utf-8")
    report = importing.import_orders(session_factory, shop["tenant"], tmp_path / "o.csv",
                                     importing.load_mapping(mapping), rejects=tmp_path / "rejects.csv")
    assert (report.products_loaded, report.orders_created, report.rejected_rows) == (1, 1, 0)
    product = db.query(Product).filter_by(tenant_id=shop["tenant"], sku="NEW-1").one()
    assert (len(product.name), len(product.brand or ""), product.price_fen) == (200, 100, 100)
