"""Audience API and the compute-traits job on real SQLite and PostgreSQL: settings read and replaced
(a bad value is a 400 naming the field), traits computed from the store through a real DuckDB
warehouse and read on any profile of the customer, keys, scopes and merchant isolation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lianjie import jobs, migrate
from lianjie.audience.service import replace_traits
from lianjie.commerce import orders, refunds
from lianjie.commerce.models import Order
from lianjie.commerce.schemas import OrderIn, RefundIn
from lianjie.config import Settings
from lianjie.crypto import get_cipher
from lianjie.db import create_db_engine, make_session_factory, transaction
from lianjie.warehouse import sync
from lianjie.warehouse.connection import connect
from lianjie.warehouse.tables import CUSTOMER_TRAITS, CUSTOMER_TRAITS_SCHEMA
from tests.commerce.test_catalogue import tree
from tests.endpoints import Endpoint, check_keys_and_scopes
from tests.factories import bearer, make_admin_key, make_merchant, make_write_key
from tests.identity.helpers import msg, send
from tests.processes import Cli

ENDPOINTS = [
    Endpoint("GET", "/api/v1/audience/settings", "audiences:read"),
    Endpoint("PUT", "/api/v1/audience/settings", "audiences:write", {"rfm_window_days": 180}),
    Endpoint("GET", "/api/v1/profiles/{profile}/traits", "profiles:read", route="/api/v1/profiles/{profile_id}/traits"),
]
IDS = [e.id for e in ENDPOINTS]
COMPUTED = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


def _row(tenant_id: int, customer_id: int, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(CUSTOMER_TRAITS_SCHEMA.names)
    return row | {"tenant_id": tenant_id, "customer_id": customer_id, "computed_at": COMPUTED} | values


@pytest.fixture
def world(db: Session) -> dict[str, Any]:
    a, b = make_merchant(db, "huamei"), make_merchant(db, "yuedong", "悦动运动")
    joined = msg("identify", userId="M001")
    profile = send(db, a.id, joined).profiles[joined["messageId"]]
    assert profile is not None
    rows = [_row(a.id, profile, lifecycle_stage="active", recency_days=3, frequency=2, monetary_fen=5_000,
                 r_score=5, f_score=4, m_score=3, rfm_group="important_value")]
    replace_traits(db, a.id, pa.Table.from_pylist(rows, schema=CUSTOMER_TRAITS_SCHEMA.to_pyarrow()))
    world = {"a": a, "b": b, "full_a": make_admin_key(db, a), "full_b": make_admin_key(db, b),
             "write_a": make_write_key(db, a), "profile": profile}
    db.commit()
    return world


def call(client: TestClient, endpoint: Endpoint, secret: str | None, world: dict[str, Any]) -> Any:
    return client.request(endpoint.method, endpoint.path.format(profile=world["profile"]), json=endpoint.body,
                          headers=bearer(secret) if secret else {})


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_keys_and_scopes(client: TestClient, db: Session, world: dict[str, Any], endpoint: Endpoint) -> None:
    read_scope = endpoint.scope.replace(":write", ":read")
    check_keys_and_scopes(db, world["a"], endpoint, lambda secret: call(client, endpoint, secret, world),
                          write_key=world["write_a"], full_key=world["full_a"], read_scope=read_scope,
                          unrelated_scope="orders:write")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_another_merchant_cannot_reach_these(client: TestClient, world: dict[str, Any], endpoint: Endpoint) -> None:
    response = call(client, endpoint, world["full_b"], world)
    if "{" in endpoint.path:
        assert response.status_code == 404, response.text
    a = bearer(world["full_a"])
    assert client.get("/api/v1/audience/settings", headers=a).json()["rfm_window_days"] == 365
    assert client.get(f"/api/v1/profiles/{world['profile']}/traits", headers=a).json()["frequency"] == 2


def test_traits_on_the_profile_carry_labels(client: TestClient, world: dict[str, Any]) -> None:
    h = bearer(world["full_a"])
    body = client.get(f"/api/v1/profiles/{world['profile']}/traits", headers=h).json()
    assert body["rfm_group"] == {"code": "important_value", "zh": "重要价值客户", "en": "Important value"}
    assert body["lifecycle_stage"] == {"code": "active", "zh": "活跃客户", "en": "Active"}
    assert (body["r_score"], body["f_score"], body["m_score"], body["monetary_fen"]) == (5, 4, 3, 5_000)
    assert body["clv_p_alive"] is None
    assert dt.datetime.fromisoformat(body["computed_at"]) == COMPUTED
    missing = client.get("/api/v1/profiles/999999/traits", headers=h)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "profile_not_found")


def test_settings_are_replaced_whole_and_bad_values_name_the_field(client: TestClient, world: dict[str, Any]) -> None:
    h = bearer(world["full_a"])
    defaults = client.get("/api/v1/audience/settings", headers=h).json()
    assert defaults == {"rfm_window_days": 365, "clv_horizon_days": 365,
                        "lifecycle": {"new_days": 30, "reactivated_days": 30, "at_risk_days": None,
                                      "lapsed_days": None, "at_risk_factor": 2.0}}
    wanted = {"rfm_window_days": 180, "lifecycle": {"at_risk_days": 45, "lapsed_days": 120}}
    saved = client.put("/api/v1/audience/settings", headers=h, json=wanted).json()
    assert saved == {"rfm_window_days": 180, "clv_horizon_days": 365,  # left-out keys take their defaults
                     "lifecycle": {"new_days": 30, "reactivated_days": 30, "at_risk_days": 45, "lapsed_days": 120,
                                   "at_risk_factor": 2.0}}
    assert client.get("/api/v1/audience/settings", headers=h).json() == saved
    bad = [({"rfm_window_days": 0}, "rfm_window_days"), ({"clv_horizon_days": "365"}, "clv_horizon_days"),
           ({"lifecycle": {"at_risk_days": 60}}, "lifecycle.lapsed_days"),
           ({"lifecycle": {"at_risk_days": 90, "lapsed_days": 90}}, "lifecycle.lapsed_days"),
           ({"lifecycle": {"new_days": True}}, "lifecycle.new_days"),
           ({"lifecycle": {"at_risk_factor": 0.5}}, "lifecycle.at_risk_factor"),
           ({"lifecycle": {"colour": 1}}, "lifecycle.colour"), ({"window": 30}, "window"),
           ({"lifecycle": []}, "lifecycle"), ([1, 2], "settings")]
    for body, field in bad:
        response = client.put("/api/v1/audience/settings", headers=h, json=body)
        assert (response.status_code, response.json()["error"].get("field")) == (400, field), body
    assert client.get("/api/v1/audience/settings", headers=h).json() == saved


def _order(db: Session, tenant_id: int, order_no: str, buyer: dict[str, str], at: dt.datetime) -> None:
    lines = [{"sku": "SKU-1", "quantity": 1, "unit_price_fen": 39900},
             {"sku": "SKU-2", "quantity": 1, "unit_price_fen": 19900}]
    orders.record_order(db, get_cipher(), tenant_id, OrderIn.model_validate(
        {"order_no": order_no, "ordered_at": at.isoformat(), "channel": "offline", "buyer": buyer, "lines": lines}))


def test_the_job_computes_from_the_store_and_the_profile_shows_it(
        client: TestClient, db: Session, session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    """A customer who bought once as a web visitor and once as a member, merged; a buyer whose only
    order was refunded (a prospect); a guest. Computed as of 10 Mar 20:00 in Shanghai."""
    shop = make_merchant(db)
    tree(db, shop.id)
    joined = msg("identify", userId="M001")
    member = send(db, shop.id, joined).profiles[joined["messageId"]]
    _order(db, shop.id, "SO-1", {"anonymous_id": "web-1"}, dt.datetime(2026, 3, 1, 14, 30, tzinfo=dt.UTC))
    _order(db, shop.id, "SO-2", {"user_id": "M001"}, dt.datetime(2026, 3, 8, 14, 30, tzinfo=dt.UTC))
    _order(db, shop.id, "SO-3", {"user_id": "U2"}, dt.datetime(2026, 3, 9, 1, 0, tzinfo=dt.UTC))
    _order(db, shop.id, "SO-4", {}, dt.datetime(2026, 3, 9, 2, 0, tzinfo=dt.UTC))
    refunds.record_refund(db, get_cipher(), shop.id, "SO-3", RefundIn.model_validate(
        {"refund_no": "RF-1", "lines": [{"line_no": 1, "quantity": 1}, {"line_no": 2, "quantity": 1}]}))
    send(db, shop.id, msg("identify", anonymousId="web-1", userId="M001"))  # merges the web visitor in
    web, u2 = (db.scalar(select(Order.profile_id).where(Order.order_no == no)) for no in ("SO-1", "SO-3"))
    key = make_admin_key(db, shop)
    db.commit()
    settings = Settings(warehouse_url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    h = bearer(key)
    assert client.get(f"/api/v1/profiles/{member}/traits", headers=h).json()["error"]["code"] == "traits_not_computed"
    skipped = jobs.compute_traits_for(session_factory, settings, as_of=COMPUTED)
    assert skipped["skipped"] == "the warehouse was never synced"

    # The daily job syncs first, then computes as of now: long after these March orders.
    daily = jobs.compute_traits(jobs.JobContext("compute-traits", session_factory, settings))
    assert [m["stages"] for m in daily["merchants"] if m["tenant_id"] == shop.id] == [{"lapsed": 1, "prospect": 1}]
    result = jobs.compute_traits_for(session_factory, settings, as_of=COMPUTED)
    (run,) = [m for m in result["merchants"] if m["tenant_id"] == shop.id]
    assert run["stages"] == {"new": 1, "prospect": 1}  # the merged customer, and U2
    assert run["thresholds"]["source"] == "fallback"  # one gap between purchase days is too few to derive

    traits = [client.get(f"/api/v1/profiles/{p}/traits", headers=h).json() for p in (member, web)]
    assert traits[0] == traits[1]
    body = traits[0]
    # Both orders count for the one customer: 598 yuan each; the last was 22:30 on 8 Mar in Shanghai.
    assert (body["recency_days"], body["frequency"], body["monetary_fen"]) == (2, 2, 2 * 59_800)
    assert (body["r_score"], body["f_score"], body["m_score"]) == (1, 1, 1)  # the only buyer
    assert body["rfm_group"]["code"] == "important_value"  # every score equals the (only) mean
    assert body["lifecycle_stage"]["code"] == "new"
    assert body["clv_expected_purchases"] is None  # one repeat buyer is too few to fit
    con = connect(settings)
    stored = con.table(CUSTOMER_TRAITS).to_pyarrow().to_pylist()
    con.disconnect()
    assert {(r["tenant_id"], r["customer_id"], r["lifecycle_stage"]) for r in stored} == {
        (shop.id, body["customer_id"], "new"), (shop.id, u2, "prospect")}
    assert body["customer_id"] in {member, web}

    # The operator's thresholds apply from the next run: 2 days since the last purchase is past at_risk.
    client.put("/api/v1/audience/settings", headers=h, json={"lifecycle": {"at_risk_days": 1, "lapsed_days": 10,
                                                                           "new_days": 5}})
    again = jobs.compute_traits_for(session_factory, settings, merchant=shop.id, as_of=COMPUTED)
    assert again["merchants"][0]["thresholds"] == {"at_risk_days": 1, "lapsed_days": 10, "source": "settings"}
    assert client.get(f"/api/v1/profiles/{web}/traits", headers=h).json()["lifecycle_stage"]["code"] == "at_risk"


def test_the_cli_computes_one_merchant(tmp_path: Path) -> None:
    """Wiring only, in one process start (slow on a busy machine): the database, merchant and synced
    warehouse are made here, where the CLI will find them (./var of its working directory)."""
    var = tmp_path / "var"
    var.mkdir()
    engine = create_db_engine(f"sqlite:///{var / 'lianjie.db'}")
    migrate.upgrade_engine(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        make_merchant(session)
    sync.run(factory, Settings(warehouse_url=f"duckdb:///{var / 'warehouse.duckdb'}"))
    engine.dispose()
    out = Cli(tmp_path, None).json("traits", "compute", "--merchant", "huamei", "--as-of", "2026-03-10", "--json")
    assert out["computed_at"] == "2026-03-10T00:00:00+00:00"
    assert [(m["slug"], m["customers"], m["clv"]) for m in out["merchants"]] == [("huamei", 0, None)]
