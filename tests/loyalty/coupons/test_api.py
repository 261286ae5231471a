"""Coupons API: keys, scopes and merchant isolation on every endpoint; bad input gets a 4xx and
changes nothing; retries of issues and redemptions apply once; printable codes as CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lianjie.loyalty.coupons.models import Coupon, CouponIssue, CouponRedemption, CouponTemplate
from tests.endpoints import Endpoint, check_keys_and_scopes
from tests.factories import bearer, make_admin_key, make_merchant, make_write_key
from tests.loyalty.coupons.helpers import give, sell, shop, template
from tests.loyalty.helpers import person

C = "/api/v1/coupons"
BASKET = {"code": "{code}", "store_code": "SH001", "channel": "offline",
          "lines": [{"sku": "DRESS", "quantity": 1, "amount_fen": 39900}]}
ENDPOINTS = [
    Endpoint("POST", C + "/templates", "coupons:write",
             {"code": "NEW", "name": "满200减30", "kind": "spend_save", "threshold_fen": 20000,
              "amount_off_fen": 3000}),
    Endpoint("GET", C + "/templates", "coupons:read"),
    Endpoint("GET", C + "/templates/{template}", "coupons:read", route=C + "/templates/{template_code}"),
    Endpoint("PATCH", C + "/templates/{template}", "coupons:write", {"name": "新人券"},
             route=C + "/templates/{template_code}"),
    Endpoint("POST", C + "/templates/{template}/issue", "coupons:write", {"idempotency_key": "i-1", "count": 2},
             route=C + "/templates/{template_code}/issue"),
    Endpoint("GET", C + "/issues/{issue}/codes.csv", "coupons:read", route=C + "/issues/{issue_id}/codes.csv"),
    Endpoint("GET", C + "/codes?profile_id={profile}", "coupons:read", route=C + "/codes"),
    Endpoint("GET", C + "/codes/{code}", "coupons:read", route=C + "/codes/{code}"),
    Endpoint("POST", C + "/codes/{free}/claim", "coupons:write", {"profile_id": "{profile}"},
             route=C + "/codes/{code}/claim"),
    Endpoint("POST", C + "/codes/{spare}/void", "coupons:write", {"reason": "printed by mistake"},
             route=C + "/codes/{code}/void"),
    Endpoint("POST", C + "/validate", "coupons:read", BASKET),
    Endpoint("POST", C + "/redeem", "coupons:write", BASKET | {"order_no": "SO-1"}),
    Endpoint("GET", C + "/conflicts", "coupons:read"),
]
IDS = [e.id for e in ENDPOINTS]
OK = {200, 201}


@pytest.fixture
def world(db: Session) -> dict[str, Any]:
    a, b = shop(db), make_merchant(db, "yuedong", "悦动运动")
    profile = person(db, a.id, "U1")
    template(db, a.id, "T20", stock=50, per_customer_limit=3)
    code, spare = give(db, a.id, "T20", profile), give(db, a.id, "T20", profile)
    free = give(db, a.id, "T20", count=1)
    issue = db.scalar(select(Coupon.issue_id).where(Coupon.code == free[0].replace("-", "")))
    for order_no in ("SO-1", "SO-7", "SO-8"):  # a coupon is redeemed for a stored order
        sell(db, a.id, order_no, "U1")
    world = {"a": a, "b": b, "full_a": make_admin_key(db, a), "full_b": make_admin_key(db, b),
             "write_a": make_write_key(db, a), "profile": profile, "template": "T20", "code": code[0],
             "spare": spare[0], "free": free[0], "issue": issue}
    db.commit()
    return world


def _fill(value: Any, world: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    if value == "{profile}":
        return world["profile"]
    return value.format(**world) if isinstance(value, str) else value


def call(client: TestClient, endpoint: Endpoint, secret: str | None, world: dict[str, Any]) -> Any:
    return client.request(endpoint.method, _fill(endpoint.path, world), json=_fill(endpoint.body, world),
                          headers=bearer(secret) if secret else {})


def counts(db: Session) -> tuple[int, ...]:
    db.expire_all()
    return (db.scalar(select(func.count()).select_from(Coupon)) or 0,
            db.scalar(select(func.count()).select_from(CouponIssue)) or 0,
            db.scalar(select(func.count()).select_from(CouponRedemption)) or 0,
            db.scalar(select(func.sum(CouponTemplate.issued))) or 0,
            db.scalar(select(func.count()).select_from(Coupon).where(Coupon.status == "issued")) or 0)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_keys_and_scopes(client: TestClient, db: Session, world: dict[str, Any], endpoint: Endpoint) -> None:
    check_keys_and_scopes(db, world["a"], endpoint, lambda secret: call(client, endpoint, secret, world),
                          write_key=world["write_a"], full_key=world["full_a"], read_scope="coupons:read",
                          unrelated_scope="loyalty:write")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_another_merchant_cannot_reach_these_coupons(client: TestClient, db: Session, world: dict[str, Any],
                                                     endpoint: Endpoint) -> None:
    before = counts(db)
    response = call(client, endpoint, world["full_b"], world)
    if endpoint.path.endswith("/validate"):
        assert [r["code"] for r in response.json()["reasons"]] == ["coupon_not_found"]
    elif "{" in endpoint.path or endpoint.path.endswith("/redeem"):
        assert response.status_code == 404, response.text
    else:
        assert response.status_code in OK
        assert world["code"] not in response.text
    if endpoint.method == "GET":
        assert response.status_code != 200 or world["code"] not in response.text
    after = counts(db)
    created_for_b = endpoint.path.endswith("/templates") and endpoint.method == "POST"
    assert after == before or created_for_b


def test_issue_redeem_and_retry_over_http(client: TestClient, world: dict[str, Any]) -> None:
    h = bearer(world["full_a"])
    body = {"idempotency_key": "campaign-7", "profile_ids": [world["profile"]]}
    first = client.post(f"{C}/templates/T20/issue", headers=h, json=body)
    assert first.status_code == 201, first.text
    again = client.post(f"{C}/templates/T20/issue", headers=h, json=body)
    assert (again.status_code, again.json()["replayed"]) == (200, True)
    assert again.json()["coupons"] == first.json()["coupons"]
    assert client.get(f"{C}/templates/T20", headers=h).json()["issued"] == 4
    over = client.post(f"{C}/templates/T20/issue", headers=h,
                       json={"idempotency_key": "x", "profile_id": world["profile"]})
    assert (over.status_code, over.json()["error"]["code"]) == (409, "coupon_limit_reached")
    code = first.json()["coupons"][0]["code"]
    check = client.post(f"{C}/validate", headers=h, json=BASKET | {"code": code, "profile_id": world["profile"]})
    assert (check.json()["applicable"], check.json()["discount_fen"]) == (True, 2000)
    sale = BASKET | {"code": code, "order_no": "SO-7", "profile_id": world["profile"]}
    redeemed = client.post(f"{C}/redeem", headers=h, json=sale)
    assert (redeemed.status_code, redeemed.json()["discount_fen"]) == (201, 2000)
    replay = client.post(f"{C}/redeem", headers=h, json=sale)
    assert (replay.status_code, replay.json()["replayed"]) == (200, True)
    other = client.post(f"{C}/redeem", headers=h, json=sale | {"order_no": "SO-8"})
    assert (other.status_code, other.json()["error"]["code"]) == (409, "coupon_already_redeemed")
    mine = client.get(f"{C}/codes", headers=h, params={"profile_id": world["profile"], "status": "redeemed"}).json()
    assert [(c["code"], c["order_no"]) for c in mine["items"]] == [(code, "SO-7")]


def test_printable_codes_as_csv(client: TestClient, world: dict[str, Any]) -> None:
    h = bearer(world["full_a"])
    issued = client.post(f"{C}/templates/T20/issue", headers=h, json={"idempotency_key": "print-1", "count": 5})
    assert issued.status_code == 201, issued.text
    response = client.get(f"{C}/issues/{issued.json()['issue_id']}/codes.csv", headers=h)
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["code", "qr_payload"]
    assert [r[0] for r in rows[1:]] == [c["code"] for c in issued.json()["coupons"]]
    assert all(r[1] == r[0].replace("-", "") for r in rows[1:])


BAD: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("POST", "/templates", {"code": "P", "name": "p", "kind": "percent_off"}, 422, "percent_off"),
    ("POST", "/templates", {"code": "P", "name": "p", "kind": "amount_off", "amount_off_fen": 100, "percent_off": 5},
     422, "percent_off"),
    ("POST", "/templates", {"code": "P", "name": "p", "kind": "amount_off", "amount_off_fen": 100,
                            "scope": {"stores": ["XX999"]}}, 422, "scope.stores"),
    ("POST", "/templates", {"code": "P", "name": "p", "kind": "amount_off", "amount_off_fen": 100,
                            "valid_from": "2026-12-01T00:00:00+08:00", "valid_until": "2026-11-01T00:00:00+08:00"},
     422, "valid_until"),
    ("POST", "/templates", {"code": "T20", "name": "other", "kind": "amount_off", "amount_off_fen": 100}, 409, "code"),
    ("POST", "/templates", {"code": "bad code!", "name": "p", "kind": "amount_off", "amount_off_fen": 1}, 422, "code"),
    ("PATCH", "/templates/T20", {"stock": 1}, 422, "stock"),
    ("PATCH", "/templates/T20", {"status": "sleeping"}, 422, "status"),
    ("POST", "/templates/T20/issue", {"idempotency_key": "k", "profile_id": 1, "count": 1}, 422, "profile_id"),
    ("POST", "/templates/T20/issue", {"idempotency_key": "k", "count": 0}, 422, "count"),
    ("POST", "/templates/T20/issue", {"idempotency_key": "k", "profile_id": 999999}, 422, "profile_id"),
    ("POST", "/templates/T20/issue", {"idempotency_key": "k", "count": 100}, 409, "template_code"),
    ("POST", "/templates/NOPE/issue", {"idempotency_key": "k", "count": 1}, 404, "template_code"),
    ("POST", "/redeem", BASKET | {"order_no": "SO-1", "lines": []}, 422, "lines"),
    ("POST", "/redeem", BASKET | {"order_no": "SO-1", "lines": [{"sku": "DRESS", "quantity": 1, "amount_fen": -1}]},
     422, "amount_fen"),
    ("POST", "/redeem", BASKET | {"order_no": "SO-1", "code": "ZZZZ-ZZZZ-ZZZZ"}, 404, "code"),
    ("POST", "/redeem", BASKET | {"order_no": "SO-404"}, 404, "order_no"),
    ("POST", "/redeem", BASKET | {"order_no": "SO-1", "profile_id": 999999}, 404, "profile_id"),
    ("POST", "/redeem", BASKET | {"order_no": "SO-1", "lines": [{"sku": "DRESS", "quantity": 1, "amount_fen": 0}]},
     422, "code"),
    ("POST", "/codes/{code}/claim", {"profile_id": 999999}, 404, "profile"),
    ("POST", "/codes/{code}/void", {}, 422, "reason"),
]


@pytest.mark.parametrize(("method", "suffix", "body", "status", "field"), BAD,
                         ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_is_refused_and_changes_nothing(client: TestClient, db: Session, world: dict[str, Any],
                                                  method: str, suffix: str, body: dict[str, Any], status: int,
                                                  field: str) -> None:
    h = bearer(world["full_a"])
    before = counts(db)
    response = client.request(method, C + _fill(suffix, world), headers=h, json=_fill(body, world))
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert field in (error.get("field") or "") + error["message"], error
    assert counts(db) == before
    assert client.get(f"{C}/templates/T20", headers=h).json()["name"] == "T20"
