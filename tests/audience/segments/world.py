"""A small hand-written warehouse for segment tests, with the customers each rule should find.

Merchant 1 (Asia/Shanghai), as of 2026-11-01 12:00 local (04:00 UTC):

- customer 10: root profile 10 plus merged profile 11; city 杭州 on 10, 上海 on 11 (the survivor's
  value wins), gender only on 11; champions; tier gold (newest row); 1000 points over both profiles;
  paid plan ``pro``; tag ``vip`` on 11; viewed 跑鞋 three times in the last 30 days (on 11) and once
  before; orders o1 (上海 store, 10-10, category C010101 + C02) and o2 (杭州 store, 2026-05-01, online).
- customer 20: city 上海, age 45, nick 小明同学; at_risk; tier silver; 50 points; plan ``plus`` ended
  yesterday but in grace; tag ``staff``; viewed 跑鞋 once, 外套 twice; order o3 refunded in full,
  o4 (ONLINE, 09-15, C0101, one of two units returned).
- customer 30: no traits; 0 points; a refunded plan term; a Store Visited and a page view.
- customer 40: erased (would match almost everything).
- customer 50: nothing at all.
- merchant 2's customer 90 mirrors customer 10's city, tags, views and orders.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

AS_OF = dt.datetime(2026, 11, 1, 4, 0, tzinfo=dt.UTC)
ZONE = "Asia/Shanghai"
EVERYONE = {10, 20, 30, 50}


def _t(text: str) -> dt.datetime:
    """A local Shanghai time as UTC."""
    return dt.datetime.fromisoformat(text + "+08:00").astimezone(dt.UTC)


def _profile(tenant: int, pid: int, customer: int, traits: dict[str, Any] | None,
             erased: bool = False) -> dict[str, Any]:
    return {"tenant_id": tenant, "profile_id": pid, "customer_id": customer, "erased": erased,
            "traits": orjson.dumps(traits).decode() if traits is not None else None,
            "erased_at": AS_OF if erased else None}


PROFILES = [
    _profile(1, 10, 10, {"city": "杭州", "age": 30}),
    _profile(1, 11, 10, {"city": "上海", "vip": True, "gender": "female"}),
    _profile(1, 20, 20, {"city": "上海", "age": 45, "nick": "小明同学"}),
    _profile(1, 30, 30, None),
    _profile(1, 40, 40, {"city": "杭州", "age": 30}, erased=True),
    _profile(1, 50, 50, {}),
    _profile(2, 90, 90, {"city": "杭州"}),
]


def _event(eid: int, tenant: int, pid: int, name: str, when: str, props: dict[str, Any] | None = None,
           type_: str = "track") -> dict[str, Any]:
    return {"id": eid, "tenant_id": tenant, "profile_id": pid, "type": type_, "event": name, "timestamp": _t(when),
            "received_at": _t(when), "properties": orjson.dumps(props or {}).decode()}


SHOES = {"category": "跑鞋", "price": 399}
EVENTS = [
    _event(1, 1, 11, "Product Viewed", "2026-10-20T10:00:00", SHOES),
    _event(2, 1, 11, "Product Viewed", "2026-10-25T10:00:00", SHOES),
    _event(3, 1, 11, "Product Viewed", "2026-10-31T23:00:00", SHOES),
    _event(4, 1, 10, "Product Viewed", "2026-09-01T10:00:00", SHOES),
    _event(5, 1, 20, "Product Viewed", "2026-10-30T10:00:00", SHOES),
    _event(6, 1, 20, "Product Viewed", "2026-10-30T11:00:00", {"category": "外套", "price": 899}),
    _event(7, 1, 20, "Product Viewed", "2026-10-30T12:00:00", {"category": "外套", "price": 899}),
    _event(8, 1, 30, "Store Visited", "2026-10-31T10:00:00", {"store_code": "SH001"}),
    _event(9, 1, 30, "Home", "2026-10-31T10:05:00", {}, type_="page"),
    *[_event(10 + i, 1, 40, "Product Viewed", "2026-10-30T10:00:00", SHOES) for i in range(5)],
    *[_event(20 + i, 2, 90, "Product Viewed", "2026-10-30T10:00:00", SHOES) for i in range(5)],
]

STORES = [
    {"id": 1, "tenant_id": 1, "code": "SH001", "city": "上海"},
    {"id": 2, "tenant_id": 1, "code": "HZ001", "city": "杭州"},
    {"id": 3, "tenant_id": 1, "code": "ONLINE", "city": None},
    {"id": 9, "tenant_id": 2, "code": "SH001", "city": "上海"},
]
CATEGORIES = [
    {"tenant_id": 1, "code": "C01", "parent_code": None, "level": 1},
    {"tenant_id": 1, "code": "C0101", "parent_code": "C01", "level": 2},
    {"tenant_id": 1, "code": "C010101", "parent_code": "C0101", "level": 3},
    {"tenant_id": 1, "code": "C02", "parent_code": None, "level": 1},
    {"tenant_id": 2, "code": "C01", "parent_code": None, "level": 1},
]


def _order(oid: int, tenant: int, pid: int | None, store: int, when: str, paid: int, *, status: str = "completed",
           refunded: int = 0, channel: str = "offline") -> dict[str, Any]:
    return {"id": oid, "tenant_id": tenant, "order_no": f"o{oid}", "profile_id": pid, "store_id": store,
            "channel": channel, "paid_fen": paid, "refunded_fen": refunded, "status": status,
            "ordered_at": _t(when), "updated_at": _t(when)}


ORDERS = [
    _order(1, 1, 10, 1, "2026-10-10T15:00:00", 30000),
    _order(2, 1, 11, 2, "2026-05-01T15:00:00", 20000, channel="online"),
    _order(3, 1, 20, 1, "2026-10-20T15:00:00", 8000, status="refunded", refunded=8000),
    _order(4, 1, 20, 3, "2026-09-15T15:00:00", 5000, status="partially_refunded", refunded=1000, channel="miniprogram"),
    _order(5, 1, 40, 1, "2026-10-20T15:00:00", 99999),
    _order(6, 1, None, 1, "2026-10-20T15:00:00", 1000),
    _order(7, 2, 90, 9, "2026-10-20T15:00:00", 50000),
]


def _line(lid: int, order: int, sku: str, category: str, qty: int, paid: int, *, tenant: int = 1,
          refunded_qty: int = 0, refunded: int = 0) -> dict[str, Any]:
    return {"id": lid, "tenant_id": tenant, "order_id": order, "line_no": 1, "sku": sku, "category_code": category,
            "quantity": qty, "paid_fen": paid, "refunded_quantity": refunded_qty, "refunded_fen": refunded}


ORDER_LINES = [
    _line(1, 1, "A", "C010101", 1, 20000),
    _line(2, 1, "B", "C02", 2, 10000),
    _line(3, 2, "A", "C010101", 1, 20000),
    _line(4, 3, "A", "C010101", 1, 8000, refunded_qty=1, refunded=8000),
    _line(5, 4, "C", "C0101", 2, 5000, refunded_qty=1, refunded=1000),
    _line(6, 5, "A", "C010101", 5, 99999),
    _line(7, 6, "A", "C010101", 1, 1000),
    _line(8, 7, "A", "C01", 3, 50000, tenant=2),
]

TRAITS = [
    {"tenant_id": 1, "customer_id": 10, "rfm_group": "champions", "lifecycle_stage": "active", "frequency": 2,
     "monetary_fen": 50000, "recency_days": 22, "clv_p_alive": 0.9, "last_order_at": _t("2026-10-10T15:00:00")},
    {"tenant_id": 1, "customer_id": 20, "rfm_group": "at_risk", "lifecycle_stage": "at_risk", "frequency": 1,
     "monetary_fen": 4000, "recency_days": 47, "clv_p_alive": 0.3, "last_order_at": _t("2026-09-15T15:00:00")},
    {"tenant_id": 1, "customer_id": 40, "rfm_group": "champions", "lifecycle_stage": "active", "frequency": 9,
     "monetary_fen": 99999, "recency_days": 1, "clv_p_alive": 0.99, "last_order_at": _t("2026-10-20T15:00:00")},
    {"tenant_id": 2, "customer_id": 90, "rfm_group": "champions", "lifecycle_stage": "active", "frequency": 1,
     "monetary_fen": 50000},
]


def _period(pid: int, plan: str, status: str, starts: str, ends: str, grace: str) -> dict[str, Any]:
    return {"id": pid * 100, "tenant_id": 1, "profile_id": pid, "plan_code": plan, "status": status,
            "starts_on": dt.date.fromisoformat(starts), "ends_on": dt.date.fromisoformat(ends),
            "grace_until": dt.date.fromisoformat(grace)}


ROWS: dict[str, list[dict[str, Any]]] = {
    "identity_map": [{k: p[k] for k in ("tenant_id", "profile_id", "customer_id", "erased")} for p in PROFILES],
    "profiles": [{k: p[k] for k in ("tenant_id", "profile_id", "traits", "erased_at")} for p in PROFILES],
    "events": EVENTS,
    "stores": STORES,
    "categories": CATEGORIES,
    "orders": ORDERS,
    "order_lines": ORDER_LINES,
    "customer_traits": TRAITS,
    "profile_tags": [{"tenant_id": t, "profile_id": p, "tag": tag}
                     for t, p, tag in ((1, 11, "vip"), (1, 20, "staff"), (1, 40, "vip"), (2, 90, "vip"))],
    "tier_assignments": [
        {"id": 1, "tenant_id": 1, "profile_id": 10, "tier_code": "member"},
        {"id": 2, "tenant_id": 1, "profile_id": 20, "tier_code": "silver"},
        {"id": 3, "tenant_id": 1, "profile_id": 11, "tier_code": "platinum"},
        {"id": 5, "tenant_id": 1, "profile_id": 10, "tier_code": "gold"},
        {"id": 6, "tenant_id": 1, "profile_id": 40, "tier_code": "gold"},
    ],
    "points_entries": [
        {"id": 1, "tenant_id": 1, "profile_id": 10, "amount": 500},
        {"id": 2, "tenant_id": 1, "profile_id": 11, "amount": 700},
        {"id": 3, "tenant_id": 1, "profile_id": 11, "amount": -200},
        {"id": 4, "tenant_id": 1, "profile_id": 20, "amount": 50},
        {"id": 5, "tenant_id": 1, "profile_id": 40, "amount": 9000},
        {"id": 6, "tenant_id": 2, "profile_id": 90, "amount": 9000},
    ],
    "membership_periods": [
        _period(11, "pro", "active", "2026-01-01", "2027-01-01", "2027-01-15"),
        _period(20, "plus", "active", "2026-06-01", "2026-10-31", "2026-11-15"),
        _period(30, "plus", "refunded", "2026-06-01", "2027-06-01", "2027-06-15"),
        _period(40, "plus", "active", "2026-06-01", "2027-06-01", "2027-06-15"),
    ],
}

SHOES_VIEWED = {"did": "Product Viewed", "where": [{"property": "category", "op": "=", "value": "跑鞋"}],
                "within_days": 30}

# (rule, the customers it should find), worked out by hand from the rows above.
CASES: list[tuple[Any, set[int]]] = [
    # profile traits: the survivor's value wins, a merged profile's fills in
    ({"trait": "traits.city", "op": "=", "value": "杭州"}, {10}),
    ({"trait": "traits.city", "op": "=", "value": "上海"}, {20}),
    ({"trait": "traits.gender", "op": "=", "value": "female"}, {10}),
    ({"trait": "traits.city", "op": "!=", "value": "杭州"}, {20}),
    ({"trait": "traits.age", "op": ">", "value": 40}, {20}),
    ({"trait": "traits.age", "op": ">=", "value": 45}, {20}),
    ({"trait": "traits.age", "op": "<", "value": 45}, {10}),
    ({"trait": "traits.age", "op": "<=", "value": 45}, {10, 20}),
    ({"trait": "traits.age", "op": "between", "value": [25, 35]}, {10}),
    ({"trait": "traits.nick", "op": "contains", "value": "同学"}, {20}),
    ({"trait": "traits.vip", "op": "=", "value": True}, {10}),
    ({"trait": "traits.city", "op": "is_set"}, {10, 20}),
    ({"trait": "traits.city", "op": "in", "value": ["杭州", "北京"]}, {10}),
    # computed traits
    ({"trait": "rfm_group", "op": "=", "value": "champions"}, {10}),
    ({"trait": "lifecycle_stage", "op": "in", "value": ["at_risk", "lost"]}, {20}),
    ({"trait": "monetary_fen", "op": ">=", "value": 10000}, {10}),
    ({"trait": "clv_p_alive", "op": "<", "value": 0.5}, {20}),
    ({"trait": "recency_days", "op": "between", "value": [20, 30]}, {10}),
    ({"trait": "last_order_at", "op": ">=", "value": "2026-10-01"}, {10}),
    ({"trait": "rfm_group", "op": "contains", "value": "risk"}, {20}),
    # membership: tier, paid plan, points
    ({"trait": "tier", "op": "=", "value": "gold"}, {10}),
    ({"trait": "tier", "op": "=", "value": "platinum"}, set()),
    ({"trait": "tier", "op": "in", "value": ["silver", "gold"]}, {10, 20}),
    ({"trait": "points", "op": ">=", "value": 1000}, {10}),
    ({"trait": "points", "op": "<", "value": 100}, {20, 30, 50}),
    ({"trait": "points", "op": "=", "value": 0}, {30, 50}),
    ({"trait": "paid_plan", "op": "is_set"}, {10, 20}),
    ({"trait": "paid_plan", "op": "=", "value": "plus"}, {20}),
    # tags
    ({"tag": "vip"}, {10}),
    ({"tag": ["staff", "nobody"]}, {20}),
    # events
    ({**SHOES_VIEWED, "at_least": 3}, {10}),
    ({**SHOES_VIEWED, "at_most": 1}, {20}),
    ({**SHOES_VIEWED, "at_least": 0, "at_most": 0}, {30, 50}),
    ({"did": "Product Viewed", "where": [{"property": "price", "op": ">", "value": 500}], "at_least": 2}, {20}),
    ({"did": "Product Viewed", "between_dates": ["2026-09-01", "2026-09-30"]}, {10}),
    ({"did": "Home", "type": "page"}, {30}),
    ({"did": "Home", "type": "track"}, set()),
    # purchases
    ({"purchased": {"category": "C01"}, "within_days": 90}, {10, 20}),
    ({"purchased": {"category": "C0101"}}, {10, 20}),
    ({"purchased": {"category": ["C02"]}}, {10}),
    ({"purchased": {"city": "上海"}}, {10}),
    ({"purchased": {"city": "杭州"}}, {10}),
    ({"purchased": {"store": "ONLINE"}}, {20}),
    ({"purchased": {"channel": "online"}}, {10}),
    ({"purchased": {}, "measure": "amount_fen", "at_least": 50000}, {10}),
    ({"purchased": {}, "measure": "orders", "at_least": 2}, {10}),
    ({"purchased": {"sku": "A"}, "measure": "quantity", "at_least": 2}, {10}),
    ({"purchased": {"sku": ["C"]}, "measure": "amount_fen", "at_least": 4000, "at_most": 4000}, {20}),
    ({"purchased": {}, "between_dates": ["2026-10-01", "2026-10-31"]}, {10}),
    ({"purchased": {}, "at_least": 0, "at_most": 0}, {30, 50}),
    # logic
    ({"not": {"tag": "vip"}}, {20, 30, 50}),
    ({"all": [{"any": [{"trait": "traits.city", "op": "=", "value": "杭州"}, {"tag": "staff"}]},
              {"not": {"trait": "points", "op": ">=", "value": 1000}}]}, {20}),
    ({"any": [{"trait": "rfm_group", "op": "=", "value": "champions"}, {"did": "Home"}]}, {10, 30}),
    ({"all": [{"purchased": {"category": "C01"}, "within_days": 90}, {"not": {**SHOES_VIEWED, "at_least": 3}}]}, {20}),
    ({"not": {"not": {"tag": "vip"}}}, {10}),
]
