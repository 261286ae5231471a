"""Property-based fuzzing of the whole HTTP API: no input, valid or not, gets a 5xx.

Schemathesis reads the app's own OpenAPI document and generates requests for every operation,
both ones the schema allows and ones it does not, with an all-scopes admin key (and a write key
for the tracking API). Half the generated path parameters are replaced by ids of a small seeded
world (a store, a customer, an order, a plan, a coupon …), so the fuzzer reaches past the 404s.
Each operation runs on SQLite and on PostgreSQL: PostgreSQL refuses what SQLite stores silently
(a NUL in text, a value too long for its column, an integer beyond 32 or 64 bits).

The number of examples per operation is ``LIANJIE_FUZZ_EXAMPLES`` (default 15; CI's budget keeps the
whole suite under 15 minutes). A failure prints the request as a curl command.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sqlalchemy.orm import sessionmaker

from lianjie import migrate
from lianjie.app import create_app
from lianjie.config import Settings
from lianjie.db import create_db_engine, make_session_factory, transaction
from tests import postgres
from tests.factories import make_admin_key, make_merchant, make_write_key

EXAMPLES = int(os.environ.get("LIANJIE_FUZZ_EXAMPLES", "15"))
_SPEC = create_app(Settings(), session_factory=sessionmaker()).openapi()
OPERATIONS = [f"{method.upper()} {path}" for path, ops in _SPEC["paths"].items() for method in ops]


@dataclass
class World:
    client: TestClient
    schema: Any
    admin: str
    write: str
    known: dict[str, Any] = field(default_factory=dict)  # path parameter -> an id that exists

    def headers(self, path: str) -> dict[str, str]:
        if path.startswith("/v1/"):
            return {"Authorization": "Basic " + base64.b64encode(f"{self.write}:".encode()).decode()}
        return {"Authorization": f"Bearer {self.admin}"}


def _ok(response: Any) -> Any:
    assert response.status_code < 300, response.text
    return response.json()


def _seed(client: TestClient, headers: dict[str, str], write: str) -> dict[str, Any]:
    """A small world through the public API: every path parameter has something real to point at."""
    def post(path: str, body: dict[str, Any]) -> Any:
        return _ok(client.post(path, json=body, headers=headers))

    def put(path: str, body: dict[str, Any]) -> Any:
        return _ok(client.put(path, json=body, headers=headers))

    post("/api/v1/stores", {"code": "SH001", "name": "上海店", "city": "上海", "province": "上海", "type": "mall"})
    post("/api/v1/staff", {"staff_no": "G001", "name": "王芳", "role": "guide", "store_code": "SH001"})
    put("/api/v1/categories/C01", {"code": "C01", "name": "服饰"})
    for sku, price in (("SKU-1", 39900), ("MEM-GOLD", 29900), ("MEM-PLAT", 59900)):
        post("/api/v1/products", {"sku": sku, "name": sku, "price_fen": price, "category_code": "C01"})
    track = {"Authorization": "Basic " + base64.b64encode(f"{write}:".encode()).decode()}
    _ok(client.post("/v1/batch", headers=track, json={"batch": [
        {"type": "identify", "userId": "M001", "traits": {"phone": "13912345678", "city": "上海"}},
        {"type": "track", "userId": "M001", "event": "Product Viewed", "properties": {"sku": "SKU-1"}},
        {"type": "identify", "anonymousId": "device-9", "traits": {"phone": "13912345678"}}]}))
    profile = _ok(client.get("/api/v1/profiles?phone=13912345678", headers=headers))["items"][0]["id"]
    plans = {"gold": ("MEM-GOLD", 29900, 1), "plat": ("MEM-PLAT", 59900, 2)}
    for code, (sku, fee, rank) in plans.items():
        post("/api/v1/membership-plans", {"code": code, "name": code, "sku": sku, "fee_fen": fee, "rank": rank})
    post("/api/v1/orders", {"order_no": "SO-1", "ordered_at": "2026-03-08T14:30:00+08:00", "store_code": "SH001",
                            "channel": "offline", "guide_staff_no": "G001", "buyer": {"member_no": "M001"},
                            "lines": [{"sku": "SKU-1", "quantity": 2, "unit_price_fen": 39900},
                                      {"sku": "MEM-GOLD", "quantity": 1, "unit_price_fen": 29900}]})
    post("/api/v1/orders/SO-1/refunds", {"refund_no": "RF-1", "lines": [{"line_no": 1, "quantity": 1}]})
    membership = _ok(client.get(f"/api/v1/memberships?profile_id={profile}", headers=headers))
    post(f"/api/v1/loyalty/accounts/{profile}/earn", {"idempotency_key": "seed-earn", "points": 500})
    hold = post(f"/api/v1/loyalty/accounts/{profile}/spend", {"idempotency_key": "seed-hold", "points": 10,
                                                               "hold": True})
    post("/api/v1/coupons/templates", {"code": "T1", "name": "满200减30", "kind": "spend_save",
                                       "threshold_fen": 20000, "amount_off_fen": 3000})
    issue = post("/api/v1/coupons/templates/T1/issue", {"idempotency_key": "seed-issue", "count": 2})
    codes = [c["code"] for c in issue["coupons"]]
    segment = post("/api/v1/segments", {"name": "上海", "rule": {"trait": "traits.city", "op": "=", "value": "上海"}})
    post("/api/v1/coalitions", {"code": "tpoint", "name": "T积分", "expiry_days": 30})
    put("/api/v1/coalitions/tpoint/members/fuzz", {"issue_price_fen_per_point": "10",
                                                   "redemption_value_fen_per_point": "8", "funding": "postpaid"})
    card = post("/api/v1/coalitions/tpoint/cards", {"profile_id": profile, "consent_source": "store form"})
    items = membership["items"] if isinstance(membership, dict) else membership
    return {"profile_id": profile, "order_no": "SO-1", "sku": "SKU-1", "staff_no": "G001", "template_code": "T1",
            "issue_id": issue["issue_id"], "segment_id": segment["id"], "hold_id": hold["operation_id"],
            "membership_id": items[0]["id"] if items else 1, "card_no": card["card_no"], "period": "2026-03",
            "merchant": "fuzz", "coupon": codes[-1] if codes else "X", "merge_id": 1, "conflict_id": 1, "key_id": 1}


_CODE_OF = {"/api/v1/stores/": "SH001", "/api/v1/categories/": "C01", "/api/v1/membership-plans/": "gold",
            "/api/v1/coalitions/": "tpoint", "/api/v1/memberships/certificates/": "CERT"}


def _known_value(world: World, path: str, name: str) -> Any:
    if name == "code":
        if path.startswith("/api/v1/coupons/codes/"):
            return world.known["coupon"]
        return next((code for prefix, code in _CODE_OF.items() if path.startswith(prefix)), None)
    return world.known.get(name)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A database of its own (the fuzzer commits), seeded once per module and database."""
    if request.param == "sqlite":
        url_cm: Any = None
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
    else:
        server: postgres.ThrowawayPostgres = request.getfixturevalue("postgres_server")
        url_cm = postgres.fresh_database("lianjie_fuzz", server.url)
        url = url_cm.__enter__()
    engine = create_db_engine(url)
    migrate.upgrade_engine(engine)
    factory = make_session_factory(engine)
    with transaction(factory, write=True) as session:
        merchant = make_merchant(session, "fuzz", "模糊测试")
        admin, write = make_admin_key(session, merchant), make_write_key(session, merchant, "web")
    app = create_app(Settings(var_dir=Path(tmp_path_factory.mktemp("fuzz-var"))), session_factory=factory)
    with TestClient(app, raise_server_exceptions=False) as client:
        known = _seed(client, {"Authorization": f"Bearer {admin}"}, write)
        yield World(client, schemathesis.openapi.from_asgi("/openapi.json", app), admin, write, known)
    engine.dispose()
    if url_cm is not None:
        url_cm.__exit__(None, None, None)


def _resolve(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = _SPEC["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object", list: "array"}


def _at_bounds(value: Any, node: Any) -> Any:
    """``value`` with every number at its schema's maximum and every free text at its longest.

    What the schema accepts must fit the columns behind it; random values seldom reach the edges,
    so half the cases are pushed there (``price_fen`` up to 10^11 into a 32-bit column, a name of 200
    characters into 100).
    """
    node = _resolve(node)
    if not isinstance(node, dict):
        return value
    for key in ("anyOf", "oneOf"):
        if key in node:
            wanted = _JSON_TYPES.get(type(value))
            match = next((alt for alt in map(_resolve, node[key]) if isinstance(alt, dict)
                          and alt.get("type") == wanted), None)
            return value if match is None else _at_bounds(value, match)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and "maximum" in node:
        return int(node["maximum"])
    if isinstance(value, str) and "maxLength" in node and not ({"pattern", "format", "enum"} & set(node)):
        return "长" * int(node["maxLength"])
    if isinstance(value, dict) and "properties" in node:
        return {k: _at_bounds(v, node["properties"].get(k, {})) for k, v in value.items()}
    if isinstance(value, list) and "items" in node:
        return [_at_bounds(v, node["items"]) for v in value]
    return value


def _adjust(world: World, method: str, path: str) -> Any:
    """Half the cases get ids that exist; half are pushed to the schema's bounds (:func:`_at_bounds`)."""
    definition = _SPEC["paths"][path][method.lower()]
    body_schema = definition.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    query_schemas = {p["name"]: p.get("schema", {}) for p in definition.get("parameters", []) if p["in"] == "query"}

    def adjust(drawn: tuple[Any, bool, bool]) -> Any:
        case, use_known, to_bounds = drawn
        if use_known:
            for name in list(case.path_parameters):
                value = _known_value(world, path, name)
                if value is not None:
                    case.path_parameters[name] = value
        if to_bounds:
            if body_schema is not None and isinstance(case.body, dict | list):
                case.body = _at_bounds(case.body, body_schema)
            if isinstance(case.query, dict):
                case.query = {k: _at_bounds(v, query_schemas.get(k, {})) for k, v in case.query.items()}
        return case
    return adjust


@pytest.mark.parametrize("operation", OPERATIONS)
def test_no_request_gets_a_server_error(world: World, operation: str) -> None:
    api_operation = world.schema.find_operation_by_label(operation)
    assert api_operation is not None, operation
    path = api_operation.path
    cases = st.one_of(api_operation.as_strategy(GenerationMode.POSITIVE),
                      api_operation.as_strategy(GenerationMode.NEGATIVE))
    strategy = st.tuples(cases, st.booleans(), st.booleans()).map(_adjust(world, api_operation.method, path))

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              derandomize=False)
    @given(strategy)
    def check(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        kwargs.pop("cookies", None)
        if isinstance(kwargs.get("data"), bytes | str):
            kwargs["content"] = kwargs.pop("data")
        headers = {**(kwargs.pop("headers", None) or {}), **world.headers(path)}
        response = world.client.request(kwargs.pop("method"), kwargs.pop("url"), headers=headers, **kwargs)
        where = f"{case.as_curl_command(headers=headers, base_url='http://testserver')}\n-> {response.text[:500]}"
        assert response.status_code < 500, where
        if response.status_code >= 400 and response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
            assert {"code", "message"} <= set(body.get("error", {})), where
            if path.startswith("/v1/"):
                assert {"code", "message"} <= set(body), where

    check()
