"""Loyalty API: keys, scopes and merchant isolation on every endpoint; bad input gets a 4xx and
changes nothing; retries with the same idempotency key apply once."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lianjie.loyalty import ledger
from lianjie.loyalty.models import PointsEntry, PointsOperation
from lianjie.loyalty.programme import ProgrammeConfig
from tests.endpoints import Endpoint, check_keys_and_scopes
from tests.factories import bearer, make_admin_key, make_merchant, make_write_key
from tests.loyalty.helpers import check_invariants, person

A = "/api/v1/loyalty/accounts/{profile}"
TIERS = [{"code": "member", "name": "会员", "threshold": 0}, {"code": "gold", "name": "金卡", "threshold": 1000}]
WHOLE = ProgrammeConfig(tiers=TIERS).model_dump(mode="json") | {"points_per_yuan": "2"}
ENDPOINTS = [
    Endpoint("GET", "/api/v1/loyalty/programme", "loyalty:read"),
    Endpoint("PUT", "/api/v1/loyalty/programme", "loyalty:write", WHOLE),
    Endpoint("PATCH", "/api/v1/loyalty/programme", "loyalty:write", {"points_per_yuan": "2"}),
    Endpoint("GET", "/api/v1/loyalty/programme/versions", "loyalty:read"),
    Endpoint("POST", "/api/v1/loyalty/programme/versions/1/rollback", "loyalty:write",
             route="/api/v1/loyalty/programme/versions/{version}/rollback"),
    Endpoint("GET", A, "loyalty:read", route="/api/v1/loyalty/accounts/{profile_id}"),
    Endpoint("GET", A + "/entries", "loyalty:read", route="/api/v1/loyalty/accounts/{profile_id}/entries"),
    Endpoint("GET", A + "/tiers", "loyalty:read", route="/api/v1/loyalty/accounts/{profile_id}/tiers"),
    Endpoint("POST", A + "/earn", "loyalty:write", {"idempotency_key": "e-1", "points": 5},
             route="/api/v1/loyalty/accounts/{profile_id}/earn"),
    Endpoint("POST", A + "/spend", "loyalty:write", {"idempotency_key": "s-1", "points": 5},
             route="/api/v1/loyalty/accounts/{profile_id}/spend"),
    Endpoint("POST", A + "/adjust", "loyalty:write",
             {"idempotency_key": "a-1", "points": 5, "reason": "gift", "operator": "ops"},
             route="/api/v1/loyalty/accounts/{profile_id}/adjust"),
    Endpoint("PUT", A + "/tier", "loyalty:write",
             {"tier_code": "gold", "reason": "ambassador", "operator": "ops"},
             route="/api/v1/loyalty/accounts/{profile_id}/tier"),
    Endpoint("POST", "/api/v1/loyalty/holds/{hold}/confirm", "loyalty:write",
             route="/api/v1/loyalty/holds/{hold_id}/confirm"),
    Endpoint("POST", "/api/v1/loyalty/holds/{hold}/cancel", "loyalty:write",
             route="/api/v1/loyalty/holds/{hold_id}/cancel"),
]
IDS = [e.id for e in ENDPOINTS]


@pytest.fixture
def world(db: Session) -> dict[str, Any]:
    a, b = make_merchant(db, "huamei"), make_merchant(db, "yuedong", "悦动运动")
    from lianjie.loyalty import programme

    programme.save(db, a.id, {"tiers": TIERS})
    profile = person(db, a.id, "U1")
    ledger.earn(db, a.id, profile, "seed", points=100)
    hold = ledger.spend(db, a.id, profile, "seed-hold", 10, hold=True)
    world = {"a": a, "b": b, "full_a": make_admin_key(db, a), "full_b": make_admin_key(db, b),
             "write_a": make_write_key(db, a), "profile": profile, "hold": hold.operation_id}
    db.commit()
    return world


def call(client: TestClient, endpoint: Endpoint, secret: str | None, world: dict[str, Any]) -> Any:
    path = endpoint.path.format(profile=world["profile"], hold=world["hold"])
    return client.request(endpoint.method, path, json=endpoint.body, headers=bearer(secret) if secret else {})


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_keys_and_scopes(client: TestClient, db: Session, world: dict[str, Any], endpoint: Endpoint) -> None:
    check_keys_and_scopes(db, world["a"], endpoint, lambda secret: call(client, endpoint, secret, world),
                          write_key=world["write_a"], full_key=world["full_a"], read_scope="loyalty:read",
                          unrelated_scope="orders:write")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_another_merchant_cannot_reach_these_points(client: TestClient, db: Session, world: dict[str, Any],
                                                   endpoint: Endpoint) -> None:
    response = call(client, endpoint, world["full_b"], world)
    if "{" in endpoint.path:
        assert response.status_code == 404, response.text
    a = bearer(world["full_a"])
    balance = client.get(f"/api/v1/loyalty/accounts/{world['profile']}", headers=a).json()
    assert (balance["available"], balance["tier"]["code"]) == (90, "member")
    assert client.get("/api/v1/loyalty/programme", headers=a).json()["points_per_yuan"] == "1"
    assert db.scalar(select(PointsOperation.hold_status).where(PointsOperation.id == world["hold"])) == "held"


def test_earn_spend_hold_and_history_over_http(client: TestClient, world: dict[str, Any]) -> None:
    h, base = bearer(world["full_a"]), f"/api/v1/loyalty/accounts/{world['profile']}"
    first = client.post(base + "/earn", headers=h, json={"idempotency_key": "review-9", "event": "Review Submitted"})
    assert (first.status_code, first.json()["points"]) == (201, 20)
    again = client.post(base + "/earn", headers=h, json={"idempotency_key": "review-9", "event": "Review Submitted"})
    assert (again.status_code, again.json()["replayed"], again.json()["operation_id"]) == (
        200, True, first.json()["operation_id"])
    hold = client.post(base + "/spend", headers=h, json={"idempotency_key": "till-7", "points": 50, "hold": True})
    assert hold.json()["hold_status"] == "held"
    assert client.get(base, headers=h).json()["available"] == 60
    confirmed = client.post(f"/api/v1/loyalty/holds/{hold.json()['operation_id']}/confirm", headers=h)
    assert confirmed.json()["hold_status"] == "confirmed"
    history = client.get(base + "/entries", headers=h, params={"limit": 2}).json()
    assert history["total"] == 4  # with the world's seed earn and hold
    assert [e["operation_kind"] for e in history["items"]] == ["hold", "earn"]


BAD = [
    ("/spend", {"idempotency_key": "x", "points": 0}, 422, "points"),
    ("/spend", {"idempotency_key": "x", "points": -5}, 422, "points"),
    ("/spend", {"idempotency_key": "x", "points": 91}, 422, "points"),
    ("/spend", {"points": 5}, 422, "idempotency_key"),
    ("/earn", {"idempotency_key": "x"}, 422, "points"),
    ("/earn", {"idempotency_key": "x", "event": "Moon Landing"}, 422, "event"),
    ("/earn", {"idempotency_key": "x", "points": 5, "colour": "red"}, 422, "colour"),
    ("/adjust", {"idempotency_key": "x", "points": -500, "reason": "typo", "operator": "ops"}, 422, "points"),
    ("/adjust", {"idempotency_key": "x", "points": 5, "operator": "ops"}, 422, "reason"),
    ("/earn", {"idempotency_key": "seed", "points": 7}, 409, "idempotency_key"),
    ("/tier", {"tier_code": "diamond", "reason": "r", "operator": "o"}, 422, "tier_code"),
]


@pytest.mark.parametrize(("suffix", "body", "status", "field"), BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_is_refused_and_changes_nothing(client: TestClient, db: Session, world: dict[str, Any],
                                                  suffix: str, body: dict[str, Any], status: int, field: str) -> None:
    h = bearer(world["full_a"])
    before = db.scalar(select(func.count()).select_from(PointsEntry))
    method = "PUT" if suffix == "/tier" else "POST"
    response = client.request(method, f"/api/v1/loyalty/accounts/{world['profile']}{suffix}", headers=h, json=body)
    assert response.status_code == status, response.text
    assert field in (response.json()["error"].get("field") or "") + response.json()["error"]["message"]
    assert db.scalar(select(func.count()).select_from(PointsEntry)) == before
    assert client.get(f"/api/v1/loyalty/accounts/{world['profile']}", headers=h).json()["available"] == 90
    check_invariants(db, world["a"].id)


def test_a_bad_programme_names_the_field(client: TestClient, world: dict[str, Any]) -> None:
    h = bearer(world["full_a"])
    response = client.put("/api/v1/loyalty/programme", headers=h, json=WHOLE | {"expiry": {"kind": "fortnightly"}})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "expiry.kind"
    unknown = client.get("/api/v1/loyalty/accounts/999999", headers=h)
    assert unknown.status_code == 404
