"""OneID merge of two customers who both hold a live paid membership: the policy keeps one, extends it
by the other's remaining days and records it; undoing the merge splits them back exactly."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.db import utcnow
from lianjie.loyalty.membership import kpis, plans
from lianjie.loyalty.membership.models import MembershipAction, MergePolicy
from lianjie.loyalty.membership.schemas import PlanUpdate
from tests.identity.helpers import msg, send
from tests.loyalty.membership.helpers import buy, make_shop, memberships


def _terms(client: TestClient, shop: dict[str, Any], profile: int) -> dict[int, dict[str, Any]]:
    return {m["id"]: m["periods"][-1] for m in memberships(client, shop, profile)}


def test_merge_extends_the_kept_membership_and_unmerge_splits_back(client: TestClient, db: Session) -> None:
    shop = make_shop(db)
    db.commit()
    today = utcnow().astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    a = buy(client, shop, "M-1", str(today - dt.timedelta(days=100)), ("MEM-GOLD", 26000),
            buyer={"member_no": "M001"})["profile_id"]
    b = buy(client, shop, "M-2", str(today - dt.timedelta(days=10)), ("MEM-GOLD", 26000),
            buyer={"phone": "13912345678"})["profile_id"]
    before = {**_terms(client, shop, a), **_terms(client, shop, b)}
    assert len(before) == 2
    assert kpis.paid_members(db, shop["tenant"], today).paid_members == 2
    [(ma, term_a)] = _terms(client, shop, a).items()
    [(mb, term_b)] = _terms(client, shop, b).items()

    send(db, shop["tenant"], msg("identify", anonymousId="kiosk", traits={"member_no": "M001",
                                                                         "phone": "13912345678"}))
    db.commit()
    merged = _terms(client, shop, b)  # either profile now shows the whole customer
    remaining = (dt.date.fromisoformat(term_b["ends_on"]) - today).days
    extended = dt.date.fromisoformat(term_a["ends_on"]) + dt.timedelta(days=remaining)
    assert (merged[ma]["ends_on"], merged[ma]["extension_days"]) == (str(extended), remaining)
    assert (merged[mb]["status"], merged[mb]["closed_on"]) == ("merged", str(today))
    assert kpis.paid_members(db, shop["tenant"], today).paid_members == 1  # never two for one person
    action = db.scalars(select(MembershipAction).where(MembershipAction.kind == "merge")).one()
    assert (action.outcome["policy"], action.outcome["extension_days"]) == ("extend", remaining)

    merge_id = client.get("/api/v1/identity/merges", headers=shop["h"]).json()["items"][0]["id"]
    assert client.post(f"/api/v1/identity/merges/{merge_id}/undo", json={}, headers=shop["h"]).status_code == 200
    after = {**_terms(client, shop, a), **_terms(client, shop, b)}
    assert after == before
    assert kpis.paid_members(db, shop["tenant"], today).paid_members == 2


def test_the_higher_plan_is_kept_whoever_survives(client: TestClient, db: Session) -> None:
    shop = make_shop(db)
    db.commit()
    today = utcnow().astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    a = buy(client, shop, "H-1", str(today - dt.timedelta(days=100)), ("MEM-GOLD", 26000),
            buyer={"member_no": "M001"})["profile_id"]
    b = buy(client, shop, "H-2", str(today - dt.timedelta(days=200)), ("MEM-EXEC", 65000),
            buyer={"phone": "13912345678"})["profile_id"]
    [(ma, term_a)] = _terms(client, shop, a).items()
    [(mb, term_b)] = _terms(client, shop, b).items()
    send(db, shop["tenant"], msg("identify", anonymousId="kiosk", traits={"member_no": "M001",
                                                                         "phone": "13912345678"}))
    db.commit()
    merged = _terms(client, shop, a)
    gold_left = (dt.date.fromisoformat(term_a["ends_on"]) - today).days
    assert merged[ma]["status"] == "merged"
    assert merged[mb]["ends_on"] == str(dt.date.fromisoformat(term_b["ends_on"]) + dt.timedelta(days=gold_left))


def _merge_two_gold_members(client: TestClient, db: Session, shop: dict[str, Any]) -> tuple[int, int, dt.date]:
    today = utcnow().astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    a = buy(client, shop, "K-1", str(today - dt.timedelta(days=100)), ("MEM-GOLD", 26000),
            buyer={"member_no": "M001"})["profile_id"]
    b = buy(client, shop, "K-2", str(today - dt.timedelta(days=10)), ("MEM-GOLD", 26000),
            buyer={"phone": "13912345678"})["profile_id"]
    send(db, shop["tenant"], msg("identify", anonymousId="kiosk", traits={"member_no": "M001",
                                                                         "phone": "13912345678"}))
    db.commit()
    return a, b, today


def test_policy_keep_takes_no_extension(client: TestClient, db: Session) -> None:
    shop = make_shop(db)
    plans.update_plan(db, shop["tenant"], "gold", PlanUpdate(merge_policy=MergePolicy.KEEP))
    db.commit()
    a, _, _ = _merge_two_gold_members(client, db, shop)
    terms = [m["periods"][-1] for m in memberships(client, shop, a)]
    assert sorted(t["status"] for t in terms) == ["active", "merged"]
    assert [t["extension_days"] for t in terms if t["status"] == "active"] == [0]


def test_unmerge_after_a_renewal_moves_the_renewal_back(client: TestClient, db: Session) -> None:
    shop = make_shop(db)
    db.commit()
    a, b, today = _merge_two_gold_members(client, db, shop)
    kept = next(m for m in memberships(client, shop, a) if m["periods"][-1]["status"] == "active")
    extension = kept["periods"][-1]["extension_days"]
    original_end = dt.date.fromisoformat(kept["periods"][-1]["ends_on"]) - dt.timedelta(days=extension)
    renewed = client.post(f"/api/v1/memberships/{kept['id']}/renew", json={"idempotency_key": "desk-1"},
                          headers=shop["h"])
    assert renewed.status_code == 201, renewed.text
    merge_id = client.get("/api/v1/identity/merges", headers=shop["h"]).json()["items"][0]["id"]
    assert client.post(f"/api/v1/identity/merges/{merge_id}/undo", json={}, headers=shop["h"]).status_code == 200
    [mine] = memberships(client, shop, a)
    first, renewal = mine["periods"]
    assert (first["ends_on"], first["extension_days"]) == (str(original_end), 0)
    assert renewal["starts_on"] == str(original_end)
    assert renewal["ends_on"] == str(original_end.replace(year=original_end.year + 1))
    [theirs] = memberships(client, shop, b)
    assert theirs["periods"][-1]["status"] == "active"
