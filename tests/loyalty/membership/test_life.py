"""The whole life of a paid membership, through the orders API: buy, earn the reward, upgrade at the
prorated fee, renew with the reward certificate, refund the renewal (claw-back), lapse after grace,
join again. Expected figures are worked out by hand in the test."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.loyalty.membership import kpis, lifecycle
from lianjie.loyalty.membership.models import MembershipAction
from tests.loyalty.helpers import check_invariants
from tests.loyalty.membership.helpers import buy, make_shop, memberships, refund

D = dt.date


def points(client: TestClient, shop: dict[str, Any], profile_id: int) -> int:
    out: int = client.get(f"/api/v1/loyalty/accounts/{profile_id}", headers=shop["h"]).json()["available"]
    return out


def test_buy_earn_upgrade_renew_refund_lapse_and_join_again(client: TestClient, db: Session) -> None:
    shop = make_shop(db)
    db.commit()
    h = shop["h"]
    me = buy(client, shop, "A-1", "2025-01-10", ("MEM-GOLD", 26000))["profile_id"]
    [joined] = memberships(client, shop, me)
    [term] = joined["periods"]
    assert (term["kind"], term["starts_on"], term["ends_on"], term["grace_until"], term["charged_fen"]) == (
        "join", "2025-01-10", "2026-01-10", "2026-02-09", 26000)

    buy(client, shop, "A-2", "2025-03-01", ("SKU-1", 50000))  # Gold pays no reward

    # Upgrade on 2025-07-11: 183 of the year's 365 days are left.
    total, left = (D(2026, 1, 10) - D(2025, 1, 10)).days, (D(2026, 1, 10) - D(2025, 7, 11)).days
    assert (total, left) == (365, 183)
    quote = int((Decimal(65000 - 26000) * left / total).quantize(Decimal(1), ROUND_HALF_UP))
    assert quote == 19553
    got = client.get(f"/api/v1/memberships/{joined['id']}/upgrade-quote", params={"plan_code": "exec"}, headers=h)
    assert got.status_code == 409  # today the 2025 term is long over: nothing running to upgrade
    buy(client, shop, "A-3", "2025-07-11", ("MEM-EXEC", quote))
    gold, upgraded = memberships(client, shop, me)[0]["periods"]
    assert (gold["status"], gold["closed_on"]) == ("upgraded", "2025-07-11")
    gold_recognised = 26000 * 182 // 365  # 182 days of Gold used
    assert (upgraded["kind"], upgraded["plan_code"], upgraded["starts_on"], upgraded["ends_on"]) == (
        "upgrade", "exec", "2025-07-11", "2026-01-10")
    assert (upgraded["charged_fen"], upgraded["carried_fen"]) == (quote, 26000 - gold_recognised)

    before = points(client, shop, me)
    buy(client, shop, "A-4", "2025-08-01", ("SKU-1", 100000))
    assert points(client, shop, me) - before == 2000  # ¥1,000 at 1 point per yuan, doubled by the plan
    buy(client, shop, "A-5", "2025-09-01", ("SKU-2", 30000), ("SKU-1", 20000))
    refund(client, shop, "A-5", "RF-5", "2025-09-05", lines=[{"line_no": 2, "quantity": 1}])
    reward = (100000 + 30000) * 200 // 10000  # 2 % of the Executive part of the year, net of the refund
    assert reward == 2600
    assert memberships(client, shop, me)[0]["reward_accrued_fen"] == reward

    buy(client, shop, "A-6", "2026-01-05", ("MEM-EXEC", 65000))  # renews early, from the old end
    renewal = memberships(client, shop, me)[0]["periods"][-1]
    assert (renewal["kind"], renewal["starts_on"], renewal["ends_on"]) == ("renew", "2026-01-10", "2027-01-10")
    [certificate] = client.get("/api/v1/memberships/certificates", params={"profile_id": me}, headers=h).json()
    assert (certificate["amount_fen"], certificate["status"]) == (reward, "issued")
    redeem = f"/api/v1/memberships/certificates/{certificate['code']}/redeem"
    assert client.post(redeem, json={"order_no": "A-7"}, headers=h).status_code == 201
    assert client.post(redeem, json={"order_no": "A-7"}, headers=h).status_code == 200
    assert client.post(redeem, json={"order_no": "A-8"}, headers=h).status_code == 409

    refund(client, shop, "A-6", "RF-6", "2026-01-20")  # the renewal is refunded after its certificate was used
    periods = memberships(client, shop, me)[0]["periods"]
    assert [p["status"] for p in periods] == ["upgraded", "active", "refunded"]
    assert (periods[-1]["refunded_fen"], periods[-1]["closed_on"]) == (65000, "2026-01-20")
    [certificate] = client.get("/api/v1/memberships/certificates", params={"profile_id": me}, headers=h).json()
    assert (certificate["status"], certificate["clawback_owed_fen"]) == ("redeemed", reward)
    clawed = db.scalars(select(MembershipAction).where(MembershipAction.kind == "refund")).one()
    assert clawed.outcome["clawback_owed_fen"] == reward

    # The Executive term ended 2026-01-10; grace runs 30 days, to 2026-02-09.
    assert lifecycle.lapse(db, shop["tenant"], D(2026, 1, 9)) == (0, 0)
    assert lifecycle.lapse(db, shop["tenant"], D(2026, 2, 8)) == (1, 0)
    assert lifecycle.lapse(db, shop["tenant"], D(2026, 2, 9)) == (0, 1)
    assert lifecycle.lapse(db, shop["tenant"], D(2026, 2, 9)) == (0, 0)
    db.commit()
    assert memberships(client, shop, me)[0]["status"] == "lapsed"

    buy(client, shop, "A-9", "2026-03-01", ("MEM-GOLD", 26000))  # after grace: a new join, not a renewal
    again, old = memberships(client, shop, me)
    assert (again["joined_on"], [p["kind"] for p in again["periods"]]) == ("2026-03-01", ["join"])
    assert old["id"] == joined["id"]
    rate = kpis.renewal_rate(db, shop["tenant"], D(2026, 6, 1))
    assert (rate.due, rate.renewed) == (1, 0)  # the Executive term came due and its renewal was refunded
    check_invariants(db, shop["tenant"])


def test_refund_within_the_policy_voids_an_unused_certificate(client: TestClient, db: Session) -> None:
    shop = make_shop(db)
    db.commit()
    me = buy(client, shop, "B-1", "2025-01-10", ("MEM-EXEC", 65000))["profile_id"]
    buy(client, shop, "B-2", "2025-02-01", ("SKU-1", 50000))
    buy(client, shop, "B-3", "2026-01-02", ("MEM-EXEC", 65000))
    refund(client, shop, "B-3", "RF-3", "2026-01-03")
    [certificate] = client.get("/api/v1/memberships/certificates", params={"profile_id": me},
                               headers=shop["h"]).json()
    assert (certificate["amount_fen"], certificate["status"], certificate["clawback_owed_fen"]) == (1000, "void", 0)
    refund(client, shop, "B-3", "RF-3", "2026-01-03")  # the same refund again changes nothing
    assert db.scalars(select(MembershipAction).where(MembershipAction.kind == "refund")).one().outcome[
        "certificate_voided_fen"] == 1000


def test_a_refund_after_the_certificate_shrinks_it_or_records_what_is_owed(client: TestClient, db: Session) -> None:
    shop = make_shop(db)
    db.commit()
    h = shop["h"]
    me = buy(client, shop, "C-1", "2025-01-10", ("MEM-EXEC", 65000))["profile_id"]
    buy(client, shop, "C-2", "2025-12-20", ("SKU-1", 100000), ("SKU-2", 30000))  # 2 % of 130,000 = 2,600
    buy(client, shop, "C-3", "2026-01-05", ("MEM-EXEC", 65000))
    refund(client, shop, "C-2", "RF-2", "2026-01-08", lines=[{"line_no": 2, "quantity": 1}])  # returned after
    [certificate] = client.get("/api/v1/memberships/certificates", params={"profile_id": me}, headers=h).json()
    assert (certificate["amount_fen"], certificate["status"]) == (100000 * 200 // 10000, "issued")
    assert client.post(f"/api/v1/memberships/certificates/{certificate['code']}/redeem", json={"order_no": "C-4"},
                       headers=h).status_code == 201
    refund(client, shop, "C-2", "RF-3", "2026-01-09", lines=[{"line_no": 1, "quantity": 1}])
    [certificate] = client.get("/api/v1/memberships/certificates", params={"profile_id": me}, headers=h).json()
    assert (certificate["status"], certificate["clawback_owed_fen"]) == ("redeemed", 2000)  # all of it is owed


def test_a_guest_buying_a_plan_is_recorded_for_finance_and_starts_nothing(client: TestClient, db: Session) -> None:
    shop = make_shop(db)
    db.commit()
    assert buy(client, shop, "G-1", "2025-05-01", ("MEM-GOLD", 26000), buyer={})["profile_id"] is None
    buy(client, shop, "G-1", "2025-05-01", ("MEM-GOLD", 26000), buyer={})  # the till sends it again
    [action] = db.scalars(select(MembershipAction).where(MembershipAction.kind == "unassigned")).all()
    assert (action.idempotency_key, action.outcome) == ("order:G-1:1", {"plan": "gold", "paid_fen": 26000})
    assert kpis.paid_members(db, shop["tenant"], D(2025, 5, 2)).paid_members == 0
