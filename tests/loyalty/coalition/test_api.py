"""Coalition API: keys, scopes, operator-only calls and isolation on every endpoint; bad input gets a
4xx and changes nothing; retries with the same idempotency key apply once; closing twice is a no-op."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lianjie.loyalty.coalition import points
from lianjie.loyalty.coalition.models import CoalitionEntry, CoalitionOperation, CoalitionPeriod
from tests.endpoints import Endpoint
from tests.factories import bearer, make_admin_key, make_merchant, make_write_key
from tests.loyalty.coalition.helpers import link, make_world
from tests.loyalty.helpers import person

C = "/api/v1/coalitions"
T = C + "/{code}"
TERMS = {"issue_price_fen_per_point": "10", "redemption_value_fen_per_point": "8", "funding": "postpaid"}
ENDPOINTS = [
    Endpoint("POST", C, "coalition:write", {"code": "tpoint", "name": "T积分", "expiry_days": 30}),
    Endpoint("GET", "/api/v1/coalitions/tpoint", "coalition:read", route=T),
    Endpoint("PUT", "/api/v1/coalitions/tpoint/members/yuedong", "coalition:write", TERMS,
             route=T + "/members/{merchant}"),
    Endpoint("POST", "/api/v1/coalitions/tpoint/cards", "coalition:write",
             {"profile_id": "{profile}", "consent_source": "store form"}, route=T + "/cards"),
    Endpoint("GET", "/api/v1/coalitions/tpoint/cards/{card}", "coalition:read", route=T + "/cards/{card_no}"),
    Endpoint("GET", "/api/v1/coalitions/tpoint/profiles/{profile}/card", "coalition:read",
             route=T + "/profiles/{profile_id}/card"),
    Endpoint("POST", "/api/v1/coalitions/tpoint/cards/{card}/earn", "coalition:write",
             {"idempotency_key": "e-1", "points": 5}, route=T + "/cards/{card_no}/earn"),
    Endpoint("POST", "/api/v1/coalitions/tpoint/cards/{card}/redeem", "coalition:write",
             {"idempotency_key": "r-1", "points": 5}, route=T + "/cards/{card_no}/redeem"),
    Endpoint("POST", "/api/v1/coalitions/tpoint/purchases", "coalition:write",
             {"idempotency_key": "p-1", "points": 500}, route=T + "/purchases"),
    Endpoint("POST", "/api/v1/coalitions/tpoint/periods/2026-03/close", "coalition:write",
             route=T + "/periods/{period}/close"),
    Endpoint("GET", "/api/v1/coalitions/tpoint/periods/2026-03/statement", "coalition:read",
             route=T + "/periods/{period}/statement"),
]
OPERATOR_ONLY = {"POST /api/v1/coalitions", "PUT /api/v1/coalitions/tpoint/members/yuedong",
                 "POST /api/v1/coalitions/tpoint/periods/2026-03/close"}
IDS = [e.id for e in ENDPOINTS]
OK = {200, 201}


@pytest.fixture
def world(db: Session) -> dict[str, Any]:
    """Operator ccc; A (huamei) prepaid with a block of 1,000, B (yuedong) postpaid; a card linked at A
    holding 100 points; an outsider merchant."""
    w = make_world(db, a_terms=("10", "8", "prepaid"), b_terms=("10", "8", "postpaid"))
    a = w.acc(db, w.a)
    profile = person(db, w.a.id, "U1")
    card = link(db, a, profile)
    points.purchase(db, a, "seed-block", 1000)
    points.earn(db, a, card, "seed", 100)
    outsider = make_merchant(db, "waibu", "外部")
    world = {"w": w, "card": card, "profile": profile, "operator": make_admin_key(db, w.operator),
             "member": make_admin_key(db, w.a), "outsider": make_admin_key(db, outsider),
             "write_a": make_write_key(db, w.a), "newcomer": person(db, w.a.id, "U2")}
    db.commit()
    return world


def call(client: TestClient, endpoint: Endpoint, secret: str | None, world: dict[str, Any]) -> Any:
    path = endpoint.path.format(card=world["card"], profile=world["profile"])
    body = endpoint.body
    if body and body.get("profile_id") == "{profile}":
        body = body | {"profile_id": world["newcomer"]}
    return client.request(endpoint.method, path, json=body, headers=bearer(secret) if secret else {})


def _caller(endpoint: Endpoint) -> str:
    return "operator" if endpoint.id in OPERATOR_ONLY or "statement" in endpoint.path else "member"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_keys_and_scopes(client: TestClient, db: Session, world: dict[str, Any], endpoint: Endpoint) -> None:
    assert call(client, endpoint, None, world).status_code == 401
    assert call(client, endpoint, world["write_a"], world).status_code == 403
    owner = world["w"].operator if _caller(endpoint) == "operator" else world["w"].a
    unrelated = make_admin_key(db, owner, "loyalty:write")
    read_only = make_admin_key(db, owner, "coalition:read")
    db.commit()
    assert call(client, endpoint, unrelated, world).status_code == 403
    expected = OK if endpoint.scope == "coalition:read" else {403}
    assert call(client, endpoint, read_only, world).status_code in expected
    response = call(client, endpoint, world[_caller(endpoint)], world)
    assert response.status_code in OK, response.text


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_outsiders_and_members_reach_only_what_is_theirs(client: TestClient, db: Session, world: dict[str, Any],
                                                         endpoint: Endpoint) -> None:
    entries = db.scalar(select(func.count()).select_from(CoalitionEntry))
    outsider = call(client, endpoint, world["outsider"], world)
    assert outsider.status_code == (409 if endpoint.path == C else 404), outsider.text  # the code is taken
    if endpoint.id in OPERATOR_ONLY and endpoint.path != C:
        refused = call(client, endpoint, world["member"], world)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "not_operator")
    assert db.scalar(select(func.count()).select_from(CoalitionEntry)) == entries
    assert db.scalar(select(func.count()).select_from(CoalitionPeriod)) == 0
    h = bearer(world["member"])
    assert client.get(f"{C}/tpoint/cards/{world['card']}", headers=h).json()["balance"] == 100


def test_a_member_sees_its_own_terms_and_statement_line_only(client: TestClient, world: dict[str, Any]) -> None:
    member = client.get(f"{C}/tpoint", headers=bearer(world["member"])).json()
    assert [m["merchant"] for m in member["members"]] == ["huamei"]
    full = client.get(f"{C}/tpoint", headers=bearer(world["operator"])).json()
    assert [(m["merchant"], m["funding"], m["prepaid_balance"]) for m in full["members"]] == [
        ("huamei", "prepaid", 900), ("yuedong", "postpaid", 0)]
    assert full["operator"] == "ccc"


def test_retries_and_closing_twice_over_http(client: TestClient, world: dict[str, Any]) -> None:
    h, card = bearer(world["member"]), world["card"]
    first = client.post(f"{C}/tpoint/cards/{card}/redeem", headers=h, json={"idempotency_key": "till-7", "points": 30})
    again = client.post(f"{C}/tpoint/cards/{card}/redeem", headers=h, json={"idempotency_key": "till-7", "points": 30})
    assert (first.status_code, again.status_code) == (201, 200)
    assert (again.json()["replayed"], again.json()["operation_id"]) == (True, first.json()["operation_id"])
    assert client.get(f"{C}/tpoint/cards/{card}", headers=h).json()["balance"] == 70
    op = bearer(world["operator"])
    closed = client.post(f"{C}/tpoint/periods/2026-03/close", headers=op)
    twice = client.post(f"{C}/tpoint/periods/2026-03/close", headers=op)
    assert (closed.status_code, twice.status_code, closed.json()) == (201, 200, twice.json())
    assert closed.json()["status"] == "closed"
    assert closed.json()["net_total_fen"] == 0


Bad = tuple[str, str, dict[str, Any] | None, int, str]
BAD: list[Bad] = [
    ("POST", "/cards/{card}/earn", {"idempotency_key": "x", "points": 0}, 422, "points"),
    ("POST", "/cards/{card}/earn", {"points": 5}, 422, "idempotency_key"),
    ("POST", "/cards/{card}/earn", {"idempotency_key": "x", "points": 5, "colour": "red"}, 422, "colour"),
    ("POST", "/cards/{card}/earn", {"idempotency_key": "seed", "points": 7}, 409, "idempotency_key"),
    ("POST", "/cards/{card}/earn", {"idempotency_key": "x", "points": 901}, 409, "points"),  # block has 900
    ("POST", "/cards/{card}/redeem", {"idempotency_key": "x", "points": 101}, 422, "points"),
    ("POST", "/cards/9999/redeem", {"idempotency_key": "x", "points": 1}, 404, "card_no"),
    ("POST", "/cards", {"profile_id": "{newcomer}"}, 422, "consent_source"),
    ("POST", "/cards", {"profile_id": "{newcomer}", "card_no": "42", "consent_source": "form"}, 404, "card_no"),
    ("POST", "/cards", {"profile_id": 0, "consent_source": "form"}, 422, "profile_id"),
    ("POST", "/purchases", {"idempotency_key": "x", "points": -3}, 422, "points"),
]

OPERATOR_BAD: list[Bad] = [
    ("PUT", "/members/yuedong", TERMS | {"issue_price_fen_per_point": "1.2345"}, 422, "issue_price"),
    ("PUT", "/members/nobody", TERMS, 404, "nobody"),
    ("PUT", "/members/yuedong", TERMS | {"funding": "barter"}, 422, "funding"),
    ("POST", "/periods/2026-13/close", None, 422, "period"),
    ("POST", "/periods/2099-01/close", None, 422, "period"),
    ("POST", "/periods/20261/close", None, 422, "period"),
]


@pytest.mark.parametrize(("method", "suffix", "body", "status", "field"), BAD + OPERATOR_BAD,
                         ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD + OPERATOR_BAD)])
def test_bad_input_is_refused_and_changes_nothing(client: TestClient, db: Session, world: dict[str, Any],
                                                  method: str, suffix: str, body: dict[str, Any] | None, status: int,
                                                  field: str) -> None:
    who = "operator" if (method, suffix, body, status, field) in OPERATOR_BAD else "member"
    before = [db.scalar(select(func.count()).select_from(t)) for t in (CoalitionEntry, CoalitionOperation)]
    if body and body.get("profile_id") == "{newcomer}":
        body = body | {"profile_id": world["newcomer"]}
    response = client.request(method, f"{C}/tpoint{suffix.format(card=world['card'])}", json=body,
                              headers=bearer(world[who]))
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert field in (error.get("field") or "") + error["message"]
    assert [db.scalar(select(func.count()).select_from(t)) for t in (CoalitionEntry, CoalitionOperation)] == before
    assert client.get(f"{C}/tpoint/cards/{world['card']}", headers=bearer(world["member"])).json()["balance"] == 100


def test_creating_a_coalition_and_adding_members(client: TestClient, db: Session, world: dict[str, Any]) -> None:
    h = bearer(world["outsider"])
    made = client.post(C, headers=h, json={"code": "ponta", "name": "Ponta", "expiry_days": None})
    assert (made.status_code, made.json()["operator"], made.json()["expiry_days"]) == (201, "waibu", None)
    assert client.post(C, headers=h, json={"code": "ponta", "name": "Ponta", "expiry_days": None}).status_code == 200
    clash = client.post(C, headers=h, json={"code": "ponta", "name": "Other", "expiry_days": None})
    assert (clash.status_code, clash.json()["error"]["details"]["differing"]) == (409, ["name"])
    added = client.put(f"{C}/ponta/members/huamei", headers=h, json=TERMS | {"issue_price_fen_per_point": "10.125"})
    assert (added.status_code, added.json()["issue_price_fen_per_point"]) == (201, "10.125")
    assert client.get(f"{C}/ponta", headers=bearer(world["member"])).status_code == 200  # now a member
    assert client.post(C, headers=h, json={"code": "T Point", "name": "x"}).status_code == 422
