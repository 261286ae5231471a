"""Paid membership API: keys, scopes and merchant isolation on every endpoint; bad input gets a 4xx
and changes nothing; retries with the same idempotency key (and replayed orders, jobs) apply once."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lianjie.commerce import catalogue
from lianjie.commerce.schemas import ProductIn
from lianjie.db import utcnow
from lianjie.loyalty.membership import lifecycle
from lianjie.loyalty.membership.models import MembershipAction, MembershipPeriod, RewardCertificate
from tests.endpoints import Endpoint
from tests.factories import bearer, make_admin_key, make_merchant, make_write_key
from tests.loyalty.helpers import order
from tests.loyalty.membership.helpers import add_plan, buy, make_shop

M = "/api/v1/memberships/{m}"
ENDPOINTS = [
    Endpoint("GET", "/api/v1/membership-plans", "loyalty:read"),
    Endpoint("POST", "/api/v1/membership-plans", "loyalty:write",
             {"code": "plat", "name": "白金", "sku": "MEM-PLAT", "fee_fen": 99900}),
    Endpoint("GET", "/api/v1/membership-plans/{plan}", "loyalty:read", route="/api/v1/membership-plans/{code}"),
    Endpoint("PATCH", "/api/v1/membership-plans/{plan}", "loyalty:write", {"grace_days": 45},
             route="/api/v1/membership-plans/{code}"),
    Endpoint("GET", "/api/v1/memberships?profile_id={profile}", "loyalty:read", route="/api/v1/memberships"),
    Endpoint("GET", "/api/v1/memberships/certificates?profile_id={profile}", "loyalty:read",
             route="/api/v1/memberships/certificates"),
    Endpoint("POST", "/api/v1/memberships/certificates/{cert}/redeem", "loyalty:write", {"order_no": "X-1"},
             route="/api/v1/memberships/certificates/{code}/redeem"),
    Endpoint("GET", "/api/v1/memberships/kpis/members", "loyalty:read"),
    Endpoint("GET", "/api/v1/memberships/kpis/revenue?from=2026-01-01&to=2026-03-01", "loyalty:read",
             route="/api/v1/memberships/kpis/revenue"),
    Endpoint("GET", "/api/v1/memberships/kpis/renewal-rate", "loyalty:read"),
    Endpoint("GET", M, "loyalty:read", route="/api/v1/memberships/{membership_id}"),
    Endpoint("PATCH", M, "loyalty:write", {"auto_renew": True}, route="/api/v1/memberships/{membership_id}"),
    Endpoint("GET", M + "/upgrade-quote?plan_code=gold", "loyalty:read",
             route="/api/v1/memberships/{membership_id}/upgrade-quote"),
    Endpoint("POST", M + "/renew", "loyalty:write", {"idempotency_key": "r-1"},
             route="/api/v1/memberships/{membership_id}/renew"),
    Endpoint("POST", M + "/upgrade", "loyalty:write", {"idempotency_key": "u-1", "plan_code": "gold"},
             route="/api/v1/memberships/{membership_id}/upgrade"),
    Endpoint("POST", M + "/refund", "loyalty:write", {"idempotency_key": "f-1", "reason": "moved", "operator": "ops"},
             route="/api/v1/memberships/{membership_id}/refund"),
]
IDS = [e.id for e in ENDPOINTS]
OK = {200, 201}


@pytest.fixture
def world(client: TestClient, db: Session) -> dict[str, Any]:
    """A Silver member (2 % reward) who joined 400 days ago and renewed 40 days ago: a certificate issued."""
    shop = make_shop(db)
    other = make_merchant(db, "yuedong", "悦动运动")
    add_plan(db, shop["tenant"], code="silver", name="银卡会员", sku="MEM-SILVER", fee_fen=9900, term_months=12,
             grace_days=30, reward_bp=200, reward_cap_fen=50000, rank=0)
    catalogue.upsert_product(db, shop["tenant"], ProductIn(sku="MEM-PLAT", name="白金会员", price_fen=99900))
    db.commit()
    today = utcnow().astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    profile = buy(client, shop, "W-1", str(today - dt.timedelta(days=400)), ("MEM-SILVER", 9900))["profile_id"]
    buy(client, shop, "W-2", str(today - dt.timedelta(days=300)), ("SKU-1", 50000))
    buy(client, shop, "W-3", str(today - dt.timedelta(days=40)), ("MEM-SILVER", 9900))
    membership = client.get("/api/v1/memberships", params={"profile_id": profile}, headers=shop["h"]).json()[0]
    cert = db.scalars(select(RewardCertificate.code)).one()
    out = {**shop, "profile": profile, "m": membership["id"], "cert": cert, "full_b": make_admin_key(db, other),
           "write_a": make_write_key(db, shop["merchant"])}
    db.commit()
    return out


def call(client: TestClient, endpoint: Endpoint, secret: str | None, world: dict[str, Any]) -> Any:
    path = endpoint.path.format(profile=world["profile"], m=world["m"], cert=world["cert"], plan="gold")
    return client.request(endpoint.method, path, json=endpoint.body, headers=bearer(secret) if secret else {})


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_keys_and_scopes(client: TestClient, db: Session, world: dict[str, Any], endpoint: Endpoint) -> None:
    assert call(client, endpoint, None, world).status_code == 401
    assert call(client, endpoint, world["write_a"], world).status_code == 403
    unrelated = make_admin_key(db, world["merchant"], "orders:write")
    read_only = make_admin_key(db, world["merchant"], "loyalty:read")
    db.commit()
    assert call(client, endpoint, unrelated, world).status_code == 403
    expected = OK if endpoint.scope == "loyalty:read" else {403}
    assert call(client, endpoint, read_only, world).status_code in expected
    response = call(client, endpoint, world["key"], world)
    assert response.status_code in OK, response.text


def _state(db: Session) -> tuple[Any, ...]:
    db.expire_all()
    periods = db.execute(select(MembershipPeriod.id, MembershipPeriod.status, MembershipPeriod.ends_on,
                                MembershipPeriod.refunded_fen).order_by(MembershipPeriod.id)).all()
    certificates = db.execute(select(RewardCertificate.code, RewardCertificate.status)).all()
    return tuple(periods), tuple(certificates), db.scalar(select(func.count()).select_from(MembershipAction))


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_another_merchant_cannot_reach_these_memberships(client: TestClient, db: Session, world: dict[str, Any],
                                                         endpoint: Endpoint) -> None:
    before = _state(db)
    response = call(client, endpoint, world["full_b"], world)
    if "{" in endpoint.path:
        assert response.status_code == 404, response.text
    if endpoint.path.endswith("kpis/members"):
        assert (response.status_code, response.json()["paid_members"]) == (200, 0)
    assert _state(db) == before


BAD = [
    ("POST", M + "/renew", {"idempotency_key": "x", "plan_code": "nope"}, 404, "plan_code"),
    ("POST", M + "/upgrade", {"idempotency_key": "x", "plan_code": "silver"}, 422, "plan_code"),
    ("POST", M + "/upgrade", {"idempotency_key": "x"}, 422, "plan_code"),
    ("POST", M + "/refund", {"idempotency_key": "x", "reason": "r", "operator": "o", "amount_fen": 9901}, 422,
     "amount_fen"),
    ("POST", M + "/refund", {"idempotency_key": "x", "operator": "o"}, 422, "reason"),
    ("POST", "/api/v1/membership-plans", {"code": "x1", "name": "X", "sku": "NO-SUCH", "fee_fen": 1}, 422, "sku"),
    ("POST", "/api/v1/membership-plans", {"code": "x1", "name": "X", "sku": "SKU-1", "fee_fen": 1,
                                          "reward_bp": 20000}, 422, "reward_bp"),
    ("POST", "/api/v1/membership-plans", {"code": "gold", "name": "金卡会员", "sku": "MEM-GOLD", "fee_fen": 1}, 409,
     "code"),
    ("POST", "/api/v1/membership-plans", {"code": "x1", "name": "X", "sku": "MEM-GOLD", "fee_fen": 1}, 409, "sku"),
    ("POST", "/api/v1/memberships/certificates/RC-NONE/redeem", {"order_no": "X"}, 404, "code"),
    ("GET", "/api/v1/memberships/kpis/revenue?from=2026-05-01&to=2026-01-01", None, 422, "from"),
    ("GET", "/api/v1/memberships?profile_id=999999", None, 404, "profile"),
    ("POST", "/api/v1/memberships/999999/renew", {"idempotency_key": "x"}, 404, "membership"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), BAD, ids=[f"{b[1]}-{i}" for i, b in
                                                                                  enumerate(BAD)])
def test_bad_input_is_refused_and_changes_nothing(client: TestClient, db: Session, world: dict[str, Any],
                                                  method: str, path: str, body: dict[str, Any] | None, status: int,
                                                  field: str) -> None:
    before = _state(db)
    response = client.request(method, path.format(m=world["m"]), json=body, headers=world["h"])
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert field in (error.get("field") or "") + error["message"]
    assert _state(db) == before


def test_retries_apply_once(client: TestClient, db: Session, world: dict[str, Any]) -> None:
    h, renew = world["h"], f"/api/v1/memberships/{world['m']}/renew"
    first = client.post(renew, json={"idempotency_key": "desk-1", "order_no": "T-9"}, headers=h)
    again = client.post(renew, json={"idempotency_key": "desk-1", "order_no": "T-9"}, headers=h)
    assert (first.status_code, again.status_code, again.json()["replayed"]) == (201, 200, True)
    assert again.json()["action_id"] == first.json()["action_id"]
    other = client.post(renew, json={"idempotency_key": "desk-1", "order_no": "T-10"}, headers=h)
    assert (other.status_code, other.json()["error"]["field"]) == (409, "idempotency_key")
    periods = db.scalar(select(func.count()).select_from(MembershipPeriod))
    assert periods == 3  # join, renewal by order, renewal at the desk
    # A re-delivered OrderCompleted for a plan order starts nothing new.
    order(db, world["tenant"], world["profile"], ("MEM-SILVER", None, 9900), order_no="W-3")
    assert db.scalar(select(func.count()).select_from(MembershipPeriod)) == periods
    # The jobs are idempotent: a second run on the same day finds nothing to do.
    day = dt.date.fromisoformat(first.json()["outcome"]["ends_on"]) + dt.timedelta(days=1)
    client.patch(f"/api/v1/memberships/{world['m']}", json={"auto_renew": True}, headers=h)
    assert lifecycle.renew_due(db, world["tenant"], day) == 1
    assert lifecycle.renew_due(db, world["tenant"], day) == 0
    assert lifecycle.lapse(db, world["tenant"], day) == (0, 0)
    refund = {"idempotency_key": "rf-1", "reason": "moved away", "operator": "ops"}
    url = f"/api/v1/memberships/{world['m']}/refund"
    assert client.post(url, json=refund, headers=h).status_code == 201
    assert client.post(url, json=refund, headers=h).json()["replayed"] is True


def test_upgrade_at_the_desk_charges_the_quote(client: TestClient, world: dict[str, Any]) -> None:
    h, base = world["h"], f"/api/v1/memberships/{world['m']}"
    term = client.get(base, headers=h).json()["periods"][-1]
    start, end = dt.date.fromisoformat(term["starts_on"]), dt.date.fromisoformat(term["ends_on"])
    today = utcnow().astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    total, left = (end - start).days, (end - today).days
    expected = ((26000 - 9900) * left * 2 + total) // (2 * total)  # half up, by hand
    quote = client.get(base + "/upgrade-quote", params={"plan_code": "gold"}, headers=h).json()
    assert (quote["fee_fen"], quote["remaining_days"], quote["total_days"]) == (expected, left, total)
    done = client.post(base + "/upgrade", json={"idempotency_key": "up-1", "plan_code": "gold"}, headers=h)
    assert (done.status_code, done.json()["outcome"]["charged_fen"]) == (201, expected)
    after = client.get(base, headers=h).json()
    assert (after["plan_code"], after["periods"][-1]["ends_on"], after["periods"][-2]["status"]) == (
        "gold", term["ends_on"], "upgraded")
    again = client.post(base + "/upgrade", json={"idempotency_key": "up-2", "plan_code": "gold"}, headers=h)
    assert (again.status_code, again.json()["error"]["code"]) == (422, "not_an_upgrade")
