"""The PIPL export: every table that points at a person is reported by a domain's section, and a
customer with data in every domain gets all of it back (personal fields decrypted, JSON times in UTC),
and nothing of anyone else."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from lianjie.audience.service import replace_traits
from lianjie.db import Base, utcnow
from lianjie.identity.export import sections
from lianjie.identity.models import Event, Profile
from lianjie.loyalty import programme
from lianjie.loyalty.coalition import cards, points, setup
from lianjie.loyalty.coalition.schemas import CoalitionIn, LinkIn, MemberIn
from lianjie.loyalty.coupons import issuing
from lianjie.loyalty.coupons.schemas import IssueIn
from lianjie.loyalty.membership.models import RewardCertificate
from lianjie.loyalty.models import PointsAccount
from lianjie.warehouse.tables import CUSTOMER_TRAITS_SCHEMA
from tests.factories import bearer, make_admin_key, make_merchant
from tests.identity.helpers import customers, msg, send
from tests.loyalty.coupons.helpers import template
from tests.loyalty.membership.helpers import add_plan, make_shop

#: Columns that name a person (or a person's account) although no foreign key says so.
PERSON_COLUMNS = {"profile_id", "profile_ids", "customer_id", "survivor_id", "merged_id", "moved_ids",
                  "account_id", "card_id", "membership_id"}
#: Tables that match the rules below but hold nothing about a person. Keep this short.
NOT_PERSONAL: set[str] = set()


def _names_a_person(table: Table) -> bool:
    return any(column.name in PERSON_COLUMNS or any(fk.column.table.name == "profiles" for fk in column.foreign_keys)
               for column in table.columns)


def personal_tables() -> set[str]:
    """Tables naming a person, and (transitively) tables with a foreign key to one of those: an order
    line belongs to an order, which belongs to a profile."""
    found = {t.name for t in Base.metadata.tables.values() if _names_a_person(t)} | {"profiles"}
    while True:
        more = {t.name for t in Base.metadata.tables.values() if t.name not in found
                and any(fk.column.table.name in found for fk in t.foreign_keys)}
        if not more:
            return found
        found |= more


def test_every_table_that_points_at_a_person_is_exported() -> None:
    covered = set().union(*(s.tables for s in sections()))
    unknown = covered - set(Base.metadata.tables)
    assert not unknown, f"sections name tables that do not exist: {sorted(unknown)}"
    missing = personal_tables() - covered - NOT_PERSONAL
    assert not missing, f"tables holding data about a person that no export section reports: {sorted(missing)}"
    # The rules see through foreign keys and column names, not only profile_id:
    assert {"order_lines", "refund_lines", "points_entries", "coalition_entries", "membership_actions",
            "profile_merges", "identity_conflicts", "customer_traits"} <= personal_tables()


# ---- a customer with data in every domain -----------------------------------------------------------

PHONE, NAME, EMAIL = "13912345678", "王小明", "xm@example.com"
OTHER_PHONE, OTHER_NAME, OTHER_EMAIL = "13700001111", "李四娘", "lisi@example.org"


def _local(days_ago: int) -> str:
    return (utcnow() - dt.timedelta(days=days_ago)).isoformat()


def _order(client: TestClient, h: dict[str, str], order_no: str, at: str, user_id: str, *lines: tuple[str, int],
           coupon: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"order_no": order_no, "ordered_at": at, "store_code": "SH001", "channel": "offline",
                            "buyer": {"user_id": user_id},
                            "lines": [{"sku": sku, "quantity": 1, "unit_price_fen": fen} for sku, fen in lines]}
    if coupon:
        body["discounts"] = [{"kind": "coupon", "code": coupon, "amount_fen": 2000}]
    response = client.post("/api/v1/orders", json=body, headers=h)
    assert response.status_code == 201, response.text
    out: dict[str, Any] = response.json()
    return out


def _person(client: TestClient, db: Session, shop: dict[str, Any], coalition: dict[str, Any], who: str,
            phone: str, name: str, email: str, order_prefix: str) -> dict[str, Any]:
    """One customer (two base profiles, merged) with events, consent, a tag, orders and a refund, points
    and a tier, a coupon redeemed by an order, a paid membership renewed with a reward certificate, a
    coalition card used here and at a partner, and stored traits."""
    tenant, h = shop["tenant"], shop["h"]
    send(db, tenant, msg(anonymousId=f"{who}-web", event="Product Viewed", properties={"sku": "SKU-1"}))
    send(db, tenant, msg("identify", userId=who, anonymousId=f"{who}-app",
                         traits={"phone": phone, "name": name, "email": email, "city": "北京",
                                 "wechat_unionid": f"{who}-union"}))
    send(db, tenant, msg("identify", userId=who, anonymousId=f"{who}-web"))  # the two profiles merge
    send(db, tenant, msg("identify", userId=who, traits={"wechat_unionid": f"{who}-union-2"}))  # a conflict
    [root] = customers(db, tenant, user_id=who)
    db.commit()
    consent = {"purpose": "marketing", "channel": "sms", "granted": True, "source": "小程序注册"}
    assert client.post(f"/api/v1/profiles/{root}/consent", json=consent, headers=h).status_code == 200
    assert client.post(f"/api/v1/profiles/{root}/tags", json={"add": [f"vip-{who}"]}, headers=h).status_code == 200
    code = issuing.issue(db, tenant, "T20", IssueIn(idempotency_key=f"give-{who}", profile_id=root),
                         now=utcnow() - dt.timedelta(hours=1)).out(db).coupons[0].code
    db.commit()
    _order(client, h, f"{order_prefix}-1", _local(400), who, ("MEM-SILVER", 9900))
    _order(client, h, f"{order_prefix}-2", _local(300), who, ("SKU-1", 39900), ("SKU-2", 19900))
    refund = client.post(f"/api/v1/orders/{order_prefix}-2/refunds", json={
        "refund_no": f"{order_prefix}-R2", "refunded_at": _local(299), "lines": [{"line_no": 2, "quantity": 1}]},
        headers=h)
    assert refund.status_code == 201, refund.text
    _order(client, h, f"{order_prefix}-3", _local(40), who, ("MEM-SILVER", 9900))  # renews: a certificate
    _order(client, h, f"{order_prefix}-4", _local(0), who, ("SKU-1", 39900), coupon=code)
    # The coalition card: linked and used here, and at the partner by the same person's profile there.
    here, there = coalition["here"], coalition["there"]
    card_no, _, _ = cards.link(db, here, LinkIn(profile_id=root, consent_source="store form"))
    points.earn(db, here, card_no, f"earn-{who}", 120)
    send(db, coalition["partner"].id, msg("identify", userId=f"{who}-partner"))
    [partner_profile] = customers(db, coalition["partner"].id, user_id=f"{who}-partner")
    cards.link(db, there, LinkIn(profile_id=partner_profile, card_no=card_no, consent_source="partner form"))
    points.earn(db, there, card_no, f"earn-there-{who}", 45)
    ids = sorted(db.scalars(select(Profile.id).where((Profile.id == root) | (Profile.merged_into_id == root))))
    db.commit()
    return {"root": root, "ids": ids, "coupon": code, "card_no": card_no, "orders": order_prefix}


@pytest.fixture
def world(client: TestClient, db: Session) -> dict[str, Any]:
    shop = make_shop(db)
    tenant = shop["tenant"]
    programme.save(db, tenant, {"pending_days": 0, "expiry": {"kind": "never"},
                                "tiers": [{"code": "member", "name": "会员", "threshold": 0},
                                          {"code": "silver", "name": "银卡", "threshold": 100}],
                                "qualification": {"metric": "points_earned", "window_days": 3650,
                                                  "grace_days": 30}})
    add_plan(db, tenant, code="silver", name="银卡会员", sku="MEM-SILVER", fee_fen=9900, term_months=12,
             grace_days=30, reward_bp=200, reward_cap_fen=50000, rank=0)
    template(db, tenant, "T20")
    operator, partner = make_merchant(db, "ccc", "联盟运营"), make_merchant(db, "yuedong", "悦动运动")
    setup.create(db, operator.id, CoalitionIn(code="tpoint", name="T积分", expiry_days=None))
    run = setup.access(db, "tpoint", operator.id)
    for merchant in (shop["merchant"], partner):
        member, _ = setup.put_member(db, run, merchant.slug, MemberIn(
            issue_price_fen_per_point=Decimal("10"), redemption_value_fen_per_point=Decimal("8")))
        member.joined_at = utcnow() - dt.timedelta(days=1)
    db.commit()
    coalition = {"here": setup.access(db, "tpoint", tenant), "there": setup.access(db, "tpoint", partner.id),
                 "partner": partner}
    me = _person(client, db, shop, coalition, "U1", PHONE, NAME, EMAIL, "A")
    other = _person(client, db, shop, coalition, "U2", OTHER_PHONE, OTHER_NAME, OTHER_EMAIL, "B")
    traits = pa.Table.from_pylist([
        {"tenant_id": tenant, "customer_id": person["root"], "computed_at": utcnow(), "frequency": n,
         "monetary_fen": 100 * n, "lifecycle_stage": "active", "rfm_group": "champions"}
        for n, person in ((3, me), (7, other))], schema=CUSTOMER_TRAITS_SCHEMA.to_pyarrow())
    replace_traits(db, tenant, traits)
    db.commit()
    return {"shop": shop, "me": me, "other": other, "partner": partner}


def _walk(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, key)
    else:
        yield key, value


def test_export_holds_every_domains_rows_of_the_customer_and_nobody_elses(
        client: TestClient, db: Session, world: dict[str, Any]) -> None:
    me, other = world["me"], world["other"]
    response = client.post(f"/api/v1/profiles/{me['ids'][-1]}/export", headers=world["shop"]["h"])
    assert response.status_code == 200, response.text
    out = response.json()
    assert json.loads(json.dumps(out)) == out
    assert out["customer_id"] == me["root"]
    assert sorted(out["profile_ids"]) == me["ids"]
    assert len(me["ids"]) == 2

    # Identity: the person in the clear, every profile, identifier, event, consent, tag, merge, conflict.
    assert out["profile"]["traits"]["name"] == NAME
    assert {p["id"] for p in out["profiles"]} == set(me["ids"])
    assert any(p["personal_traits"].get("phone", [None])[0] == PHONE for p in out["profiles"])
    values = {(i["type"], i["value"]) for i in out["identifiers"]}
    assert {("phone", "+86" + PHONE), ("email", EMAIL), ("user_id", "U1"), ("anonymous_id", "U1-web"),
            ("anonymous_id", "U1-app"), ("wechat_unionid", "U1-union")} <= values
    stored_events = db.scalar(select(func.count()).select_from(Event).where(Event.profile_id.in_(me["ids"])))
    assert stored_events is not None
    assert len(out["events"]) == stored_events >= 4
    identify = next(e for e in out["events"] if e.get("traits", {}).get("name"))
    assert (identify["traits"]["phone"], identify["traits"]["email"]) == (PHONE, EMAIL)
    assert {(c["purpose"], c["channel"], c["granted"]) for c in out["consent_history"]} == {
        ("marketing", "sms", True), ("coalition", "all", True)}
    assert [t["tag"] for t in out["tags"]] == ["vip-U1"]
    [merge] = out["merges"]
    assert {merge["survivor_id"], merge["merged_id"]} == set(me["ids"])
    assert merge["survivor_id"] == me["root"]
    assert len(out["identity_conflicts"]) == 1
    assert set(out["identity_conflicts"][0]["profile_ids"]) <= set(me["ids"])

    # Commerce: orders with lines and refunds (with lines), in fen.
    orders = {o["order_no"]: o for o in out["orders"]}
    assert set(orders) == {"A-1", "A-2", "A-3", "A-4"}
    assert [(line["sku"], line["paid_fen"]) for line in orders["A-2"]["lines"]] == [("SKU-1", 39900),
                                                                                    ("SKU-2", 19900)]
    [refund] = orders["A-2"]["refunds"]
    assert (refund["refund_no"], refund["amount_fen"]) == ("A-R2", 19900)
    assert [(line["line_no"], line["quantity"], line["amount_fen"]) for line in refund["lines"]] == [(2, 1, 19900)]
    assert orders["A-2"]["refunded_fen"] == 19900
    assert orders["A-4"]["paid_fen"] == 39900 - 2000

    # Loyalty: accounts, operations, lots and entries that add up; the tier history.
    accounts = db.scalars(select(PointsAccount).where(PointsAccount.profile_id.in_(me["ids"]))).all()
    assert [a["id"] for a in out["points"]["accounts"]] == [a.id for a in accounts]
    balance = sum(a["balance"] for a in out["points"]["accounts"])
    assert balance == sum(e["amount"] for e in out["points"]["entries"]) > 0
    assert {o["order_no"] for o in out["points"]["operations"] if o["kind"] == "order"} == {"A-1", "A-2", "A-3", "A-4"}
    assert any(o["kind"] == "reverse" for o in out["points"]["operations"])
    assert {e["account_id"] for e in out["points"]["entries"]} <= {a.id for a in accounts}
    assert {lot["account_id"] for lot in out["points"]["lots"]} <= {a.id for a in accounts}
    assert [t["tier_code"] for t in out["tiers"]][-1] == "silver"

    # Coupons: the code, redeemed by order A-4 for 2,000 fen.
    [coupon] = out["coupons"]["coupons"]
    assert (coupon["code"], coupon["template_code"], coupon["status"]) == (me["coupon"], "T20", "redeemed")
    [redemption] = out["coupons"]["redemptions"]
    assert (redemption["order_no"], redemption["discount_fen"]) == ("A-4", 2000)

    # Paid membership: joined, renewed, the year's reward paid out as a certificate.
    [membership] = out["memberships"]
    assert membership["plan_code"] == "silver"
    assert [(p["kind"], p["fee_fen"], p["order_no"]) for p in membership["periods"]] == [
        ("join", 9900, "A-1"), ("renew", 9900, "A-3")]
    assert {a["order_no"] for p in membership["periods"] for a in p["reward_accruals"]} >= {"A-2"}
    [certificate] = membership["certificates"]
    stored = db.scalars(select(RewardCertificate).where(RewardCertificate.profile_id.in_(me["ids"]))).one()
    assert (certificate["code"], certificate["amount_fen"]) == (stored.code, stored.amount_fen)
    assert certificate["amount_fen"] == (39900 + 19900 - 19900) * 200 // 10000
    assert {a["kind"] for a in membership["actions"]} >= {"join", "renew"}

    # Coalition: the card as this merchant holds it; the partner's entries stay the partner's.
    [card] = out["coalition_cards"]
    assert (card["coalition"], card["card_no"], card["balance"]) == ("tpoint", me["card_no"], 120 + 45)
    assert [(link["profile_id"], link["consent_source"]) for link in card["links"]] == [(me["root"], "store form")]
    assert [(e["kind"], e["points"]) for e in card["entries"]] == [("issue", 120)]
    assert [lot["amount"] for lot in card["lots"]] == [120]
    assert [o["idempotency_key"] for o in card["operations"]] == ["earn-U1"]

    # Audience: the stored traits.
    assert [(t["customer_id"], t["frequency"], t["monetary_fen"]) for t in out["traits"]] == [(me["root"], 3, 300)]

    # Times are ISO 8601 in UTC; nothing of the other customer (or the partner's profile) appears.
    for key, value in _walk(out):
        if key.endswith("_at") and value is not None:
            assert dt.datetime.fromisoformat(value).utcoffset() == dt.timedelta(0), (key, value)
        if key in {"profile_id", "customer_id", "survivor_id", "merged_id", "merged_into_id"} and value is not None:
            assert value in me["ids"], (key, value)
    text = json.dumps(out, ensure_ascii=False)
    for theirs in (OTHER_PHONE, OTHER_NAME, OTHER_EMAIL, '"U2"', other["coupon"], other["card_no"], '"B-1"',
                   "U1-partner", "earn-there-U1", "vip-U2"):
        assert theirs not in text, theirs


def test_export_of_an_unknown_or_foreign_profile_is_404(client: TestClient, db: Session,
                                                        world: dict[str, Any]) -> None:
    partner_key = make_admin_key(db, world["partner"])
    db.commit()
    for profile_id, h in ((world["me"]["root"], bearer(partner_key)), (999_999, world["shop"]["h"])):
        response = client.post(f"/api/v1/profiles/{profile_id}/export", headers=h)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "profile_not_found"
