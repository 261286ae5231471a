"""Every admin write of loyalty (plans, coupons, coalition, points adjustments, manual tiers, membership
refunds) is in the audit log, with the key that made it and what changed; replays add nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from lianjie.db import utcnow
from lianjie.loyalty import programme
from tests.factories import make_merchant
from tests.loyalty.helpers import admin, person
from tests.loyalty.membership.helpers import buy, make_shop


def _log(client: TestClient, headers: dict[str, str], action: str, actor: str) -> list[dict[str, Any]]:
    """The entries of ``action`` (a prefix) made by ``actor``, newest first (the fixtures' own are by "system")."""
    response = client.get("/api/v1/audit", params={"action": action, "actor": actor}, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _ok(response: Any) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def test_plan_and_coupon_writes_are_audited_once(client: TestClient, db: Session) -> None:
    shop = make_shop(db)
    h, actor = admin(db, shop["merchant"])
    db.commit()
    _ok(client.post("/api/v1/products", json={"sku": "MEM-PLAT", "name": "白金", "price_fen": 99900}, headers=h))
    plan = {"code": "plat", "name": "白金会员", "sku": "MEM-PLAT", "fee_fen": 99900}
    _ok(client.post("/api/v1/membership-plans", json=plan, headers=h))
    _ok(client.post("/api/v1/membership-plans", json=plan, headers=h))  # the same plan again: no new entry
    _ok(client.patch("/api/v1/membership-plans/plat", json={"grace_days": 45}, headers=h))
    created, updated = reversed(_log(client, h, "membership_plan.", actor))
    assert (created["action"], created["target"], created["actor"]) == ("membership_plan.create",
                                                                         "membership_plan:plat", actor)
    assert created["after"]["fee_fen"] == 99900
    assert updated["action"] == "membership_plan.update"
    assert (updated["before"]["grace_days"], updated["after"]["grace_days"]) == (30, 45)

    template = {"code": "T20", "name": "满100减20", "kind": "amount_off", "amount_off_fen": 2000}
    _ok(client.post("/api/v1/coupons/templates", json=template, headers=h))
    _ok(client.patch("/api/v1/coupons/templates/T20", json={"stock": 500}, headers=h))
    issue = {"idempotency_key": "batch-1", "count": 3}
    codes = _ok(client.post("/api/v1/coupons/templates/T20/issue", json=issue, headers=h))["coupons"]
    _ok(client.post("/api/v1/coupons/templates/T20/issue", json=issue, headers=h))  # a replay
    _ok(client.post(f"/api/v1/coupons/codes/{codes[0]['code']}/void", json={"reason": "printed twice"},
                    headers=h))
    entries = _log(client, h, "coupon", actor)
    assert [e["action"] for e in entries] == ["coupon.void", "coupon.issue", "coupon_template.update",
                                              "coupon_template.create"]
    void, issued, patched, _ = entries
    assert void["after"] == {"reason": "printed twice"}
    assert (issued["after"]["template_code"], issued["after"]["issued"]) == ("T20", 3)
    assert (patched["before"]["stock"], patched["after"]["stock"]) == (None, 500)
    assert all(e["actor"] == actor and e["request_id"] for e in entries)
    assert all(c["code"] not in str(entries) for c in codes[1:])  # live codes are bearer tokens: not logged


def test_coalition_points_tier_and_refund_writes_are_audited(client: TestClient, db: Session) -> None:
    shop = make_shop(db)
    programme.save(db, shop["tenant"], {"pending_days": 0, "expiry": {"kind": "never"},
                                        "tiers": [{"code": "silver", "name": "银卡", "threshold": 0},
                                                  {"code": "gold", "name": "金卡", "threshold": 100000}]})
    partner = make_merchant(db, "yuedong")
    h, actor = admin(db, shop["merchant"])
    customer = person(db, shop["tenant"], "U1")
    db.commit()

    _ok(client.post("/api/v1/coalitions", json={"code": "tpoint", "name": "T积分"}, headers=h))
    terms = {"issue_price_fen_per_point": "10", "redemption_value_fen_per_point": "8"}
    _ok(client.put("/api/v1/coalitions/tpoint/members/yuedong", json=terms, headers=h))
    _ok(client.put("/api/v1/coalitions/tpoint/members/yuedong", json=terms, headers=h))  # unchanged: no entry
    _ok(client.put("/api/v1/coalitions/tpoint/members/yuedong", json=terms | {"redemption_value_fen_per_point": "9"},
                   headers=h))
    changed, added, made = _log(client, h, "coalition", actor)
    assert (made["action"], made["after"]["name"]) == ("coalition.create", "T积分")
    assert (added["action"], added["target"]) == ("coalition_member.add", "coalition:tpoint:member:yuedong")
    assert changed["action"] == "coalition_member.update"
    assert (changed["before"]["redemption_value_fen_per_point"],
            changed["after"]["redemption_value_fen_per_point"]) == ("8", "9")
    assert partner.slug in changed["target"]

    adjust = {"idempotency_key": "adj-1", "points": 500, "reason": "断网补录", "operator": "desk-1"}
    _ok(client.post(f"/api/v1/loyalty/accounts/{customer}/adjust", json=adjust, headers=h))
    _ok(client.post(f"/api/v1/loyalty/accounts/{customer}/adjust", json=adjust, headers=h))  # a replay
    until = (utcnow() + dt.timedelta(days=30)).isoformat()
    _ok(client.put(f"/api/v1/loyalty/accounts/{customer}/tier",
                   json={"tier_code": "gold", "until": until, "reason": "VIP event", "operator": "mgr-1"}, headers=h))
    [adjusted] = _log(client, h, "points.", actor)
    assert (adjusted["target"], adjusted["after"]["points"], adjusted["actor"]) == (f"profile:{customer}", 500, actor)
    [tier] = _log(client, h, "tier.", actor)
    assert tier["before"] == {"tier_code": None}  # no tier evaluated yet
    assert (tier["after"]["tier_code"], tier["after"]["operator"]) == ("gold", "mgr-1")

    buy(client, shop, "M-1", dt.date.today().isoformat(), ("MEM-GOLD", 26000), buyer={"user_id": "U1"})
    [membership] = client.get("/api/v1/memberships", params={"profile_id": customer}, headers=h).json()
    refund = {"idempotency_key": "rf-1", "reason": "moving abroad", "operator": "desk-1"}
    _ok(client.post(f"/api/v1/memberships/{membership['id']}/refund", json=refund, headers=h))
    _ok(client.post(f"/api/v1/memberships/{membership['id']}/refund", json=refund, headers=h))  # a replay
    [refunded] = _log(client, h, "membership.", actor)
    assert refunded["target"] == f"membership:{membership['id']}"
    assert refunded["after"]["refunded_fen"] == refunded["after"]["paid_fen"] == 26000
