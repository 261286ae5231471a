"""Orders and refunds: computed totals, safe replays, OneID buyers, exact refunds, domain events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lianjie import domain_events
from lianjie.commerce import orders
from lianjie.commerce.events import OrderCompleted, OrderRefunded
from lianjie.commerce.models import Order, OrderLine, Refund
from lianjie.identity.models import Event
from tests.commerce.test_catalogue import tree
from tests.endpoints import Endpoint
from tests.factories import bearer, make_admin_key, make_guide, make_merchant, make_store, make_write_key
from tests.identity.helpers import msg, send

ORDER: dict[str, Any] = {"order_no": "SO-1", "ordered_at": "2026-03-08T14:30:00+08:00", "store_code": "SH001",
         "channel": "offline", "guide_staff_no": "G001", "payment_method": "wechat_pay",
         "buyer": {"member_no": "M001", "phone": "13912345678"},
         "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_fen": 30000},
                   {"sku": "SKU-2", "quantity": 2, "unit_price_fen": 10000},
                   {"sku": "SKU-2", "quantity": 1, "unit_price_fen": 10000}],
         "discounts": [{"kind": "coupon", "code": "C50", "amount_fen": 5000},
                       {"kind": "discount", "amount_fen": 5000}]}

ENDPOINTS = [
    Endpoint("GET", "/api/v1/orders", "orders:read"),
    Endpoint("POST", "/api/v1/orders", "orders:write", ORDER | {"order_no": "SO-NEW"}),
    Endpoint("GET", "/api/v1/orders/SO-1", "orders:read", route="/api/v1/orders/{order_no}"),
    Endpoint("POST", "/api/v1/orders/SO-1/refunds", "orders:write",
             {"refund_no": "RF-NEW", "lines": [{"line_no": 3, "quantity": 1}]},
             route="/api/v1/orders/{order_no}/refunds"),
]


@pytest.fixture
def world(db: Session, client: TestClient) -> dict[str, Any]:
    a, b = make_merchant(db, "huamei"), make_merchant(db, "yuedong", "悦动运动")
    tree(db, a.id)
    store = make_store(db, a)
    make_guide(db, a, store)
    out = {"a": a, "b": b, "admin_a": make_admin_key(db, a), "admin_b": make_admin_key(db, b),
           "write_a": make_write_key(db, a)}
    db.commit()
    return out


@pytest.fixture
def published() -> Iterator[list[object]]:
    """Every OrderCompleted / OrderRefunded published during the test."""
    seen: list[object] = []

    def handler(_: Session, event: object) -> None:
        seen.append(event)

    domain_events.subscribe(OrderCompleted, handler)
    domain_events.subscribe(OrderRefunded, handler)
    yield seen
    for kind in (OrderCompleted, OrderRefunded):
        domain_events._handlers[kind].remove(handler)


def post(client: TestClient, world: dict[str, Any], body: dict[str, Any], path: str = "/api/v1/orders") -> Any:
    return client.post(path, json=body, headers=bearer(world["admin_a"]))


def counts(db: Session) -> tuple[int, ...]:
    return tuple(db.scalar(select(func.count()).select_from(t)) or 0 for t in (Order, OrderLine, Refund, Event))


def test_totals_allocation_and_safe_replays(client: TestClient, db: Session, world: dict[str, Any],
                                            published: list[object]) -> None:
    created = post(client, world, ORDER)
    assert created.status_code == 201, created.text
    order = created.json()
    # lines 30000 / 20000 / 10000, order discounts 10000: shares 5000 / 3333 / 1666 + the 1 fen left to the largest
    assert [line["allocated_fen"] for line in order["lines"]] == [5001, 3333, 1666]
    assert [line["paid_fen"] for line in order["lines"]] == [24999, 16667, 8334]
    assert (order["list_fen"], order["discount_fen"], order["paid_fen"]) == (60000, 10000, 50000)
    assert (order["store_code"], order["guide_staff_no"], order["status"]) == ("SH001", "G001", "completed")
    before = counts(db)
    replay = post(client, world, ORDER)
    assert replay.status_code == 200
    assert replay.json() == order
    assert counts(db) == before
    changed = post(client, world, ORDER | {"store_code": None, "lines": [ORDER["lines"][0] | {"quantity": 2},
                                                                        *ORDER["lines"][1:]]})
    assert changed.status_code == 409
    assert set(changed.json()["error"]["details"]) == {"store_code", "lines[0].quantity", "lines[0].list_fen"}
    other_buyer = post(client, world, ORDER | {"buyer": {"member_no": "M002"}})
    assert other_buyer.json()["error"]["details"] == {"buyer": {"stored": "(hidden)", "sent": "(hidden)"}}
    assert counts(db) == before
    assert [type(e) for e in published] == [OrderCompleted]
    event = published[0]
    assert isinstance(event, OrderCompleted)
    assert (event.order_no, event.paid_fen, sum(line.paid_fen for line in event.lines)) == ("SO-1", 50000, 50000)


@pytest.mark.parametrize(("change", "field"), [
    ({"ordered_at": "2026-03-08T14:30:00"}, "body.ordered_at"),
    ({"lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_fen": 1}, {"sku": "NOPE", "quantity": 1,
                                                                        "unit_price_fen": 1}]}, "lines[1].sku"),
    ({"lines": [{"sku": "SKU-1", "quantity": 0, "unit_price_fen": 1}]}, "body.lines.0.quantity"),
    ({"lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_fen": -1}]}, "body.lines.0.unit_price_fen"),
    ({"lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_fen": 100, "discount_fen": 101}]},
     "lines[0].discount_fen"),
    ({"discounts": [{"amount_fen": 10**8}]}, "discounts"),
    ({"paid_fen": 1}, "paid_fen"),
    ({"store_code": "NOPE"}, "store_code"),
    ({"guide_staff_no": "G999"}, "guide_staff_no"),
    ({"channel": "telepathy"}, "body.channel"),
    ({"discounts": [{"kind": "coupon", "amount_fen": 100}]}, "body.discounts.0"),
])
def test_bad_orders_are_422_naming_the_field_and_store_nothing(client: TestClient, db: Session,
                                                               world: dict[str, Any], change: dict[str, Any],
                                                               field: str, published: list[object]) -> None:
    before = counts(db)
    response = post(client, world, ORDER | change)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert counts(db) == before
    assert published == []


def test_buyers_resolve_through_oneid_and_a_customer_sees_all_its_orders(client: TestClient, db: Session,
                                                                          world: dict[str, Any]) -> None:
    tenant = world["a"].id
    first = post(client, world, ORDER | {"buyer": {"member_no": "M7"}}).json()
    second = post(client, world, ORDER | {"order_no": "SO-2", "buyer": {"phone": "13800001111"}}).json()
    guest = post(client, world, ORDER | {"order_no": "SO-3", "buyer": {"phone": "13800138000"}}).json()
    assert guest["profile_id"] is None  # the cashier's placeholder phone identifies nobody
    assert first["profile_id"] != second["profile_id"]
    event = db.scalar(select(Event).where(Event.tenant_id == tenant, Event.message_id == "order:SO-1"))
    assert event is not None
    assert (event.event, event.profile_id, event.payload["properties"]["total"]) == ("Order Completed",
                                                                                    first["profile_id"], 500.0)
    assert "phone" not in str(event.payload)  # personal fields are split off and sealed
    send(db, tenant, msg("identify", userId="U7", traits={"member_no": "M7", "phone": "13800001111"}))
    db.commit()
    listed = client.get("/api/v1/orders", params={"profile_id": second["profile_id"]},
                        headers=bearer(world["admin_a"])).json()
    assert sorted(o["order_no"] for o in listed["items"]) == ["SO-1", "SO-2"]
    assert listed["total"] == 2
    events = client.get(f"/api/v1/profiles/{first['profile_id']}/events", headers=bearer(world["admin_a"])).json()
    assert {"Order Completed"} <= {e.get("event") for e in events["items"]}


def test_list_filters(client: TestClient, world: dict[str, Any]) -> None:
    post(client, world, ORDER)
    post(client, world, ORDER | {"order_no": "SO-2", "channel": "online", "store_code": None,
                                 "guide_staff_no": None, "ordered_at": "2026-05-01T10:00:00+08:00"})
    admin = bearer(world["admin_a"])

    def nos(**params: Any) -> list[str]:
        return [o["order_no"] for o in client.get("/api/v1/orders", params=params, headers=admin).json()["items"]]

    assert nos() == ["SO-2", "SO-1"]
    assert nos(channel="offline") == ["SO-1"]
    assert nos(store_code="SH001") == ["SO-1"]
    assert nos(store_code="NOPE") == []
    assert nos(since="2026-04-01T00:00:00+08:00") == ["SO-2"]
    assert nos(until="2026-04-01T00:00:00+08:00") == ["SO-1"]
    assert nos(status="refunded") == []
    assert nos(limit=1, offset=1) == ["SO-1"]
    assert nos(since="2026-03-31T16:00:00") == ["SO-2"]  # a filter time without an offset is UTC
    assert client.get("/api/v1/orders", params={"since": "yesterday"}, headers=admin).status_code == 422


def test_refunds_are_exact_and_never_exceed_the_order(client: TestClient, db: Session, world: dict[str, Any],
                                                      published: list[object]) -> None:
    body = ORDER | {"discounts": [], "lines": [{"sku": "SKU-2", "quantity": 3, "list_fen": 1000}]}
    post(client, world, body)
    path = "/api/v1/orders/SO-1/refunds"
    amounts = []
    for n in range(3):
        response = post(client, world, {"refund_no": f"RF-{n}", "lines": [{"line_no": 1, "quantity": 1}]}, path)
        assert response.status_code == 201, response.text
        amounts.append(response.json()["refunds"][-1]["amount_fen"])
    assert amounts == [333, 333, 334]
    done = client.get("/api/v1/orders/SO-1", headers=bearer(world["admin_a"])).json()
    assert (done["status"], done["refunded_fen"], done["lines"][0]["refunded_quantity"]) == ("refunded", 1000, 3)
    before = counts(db)
    too_much = post(client, world, {"refund_no": "RF-9", "lines": [{"line_no": 1, "quantity": 1}]}, path)
    assert too_much.status_code == 422
    assert too_much.json()["error"]["code"] == "refund_exceeds_order"
    assert too_much.json()["error"]["field"] == "lines[0].quantity"
    assert post(client, world, {"refund_no": "RF-9"}, path).json()["error"]["code"] == "refund_exceeds_order"
    assert post(client, world, {"refund_no": "RF-0", "lines": [{"line_no": 1, "quantity": 1}]},
                path).status_code == 200
    conflict = post(client, world, {"refund_no": "RF-0", "lines": [{"line_no": 1, "quantity": 2}]}, path)
    assert conflict.status_code == 409
    assert "lines[0].quantity" in conflict.json()["error"]["details"]
    assert counts(db) == before
    refunds = [e for e in published if isinstance(e, OrderRefunded)]
    assert [(e.refund_no, e.refunded_fen, e.order_paid_fen) for e in refunds] == [
        ("RF-0", 333, 1000), ("RF-1", 333, 1000), ("RF-2", 334, 1000)]


def test_whole_order_refund_and_partial_status(client: TestClient, db: Session, world: dict[str, Any]) -> None:
    order = post(client, world, ORDER).json()
    path = "/api/v1/orders/SO-1/refunds"
    partial = post(client, world, {"refund_no": "RF-1", "lines": [{"line_no": 2, "quantity": 1,
                                                                   "amount_fen": 100}]}, path).json()
    assert partial["status"] == "partially_refunded"
    over = post(client, world, {"refund_no": "RF-2", "lines": [{"line_no": 3, "quantity": 1,
                                                                "amount_fen": 8335}]}, path)
    assert over.json()["error"]["field"] == "lines[0].amount_fen"
    rest = post(client, world, {"refund_no": "RF-3", "reason": "退货"}, path).json()
    assert rest["status"] == "refunded"
    assert rest["refunded_fen"] == order["paid_fen"]
    assert [line["refunded_fen"] for line in rest["lines"]] == [line["paid_fen"] for line in order["lines"]]
    assert post(client, world, {"refund_no": "RF-4"}, "/api/v1/orders/NOPE/refunds").status_code == 404
    event = db.scalar(select(Event).where(Event.message_id == "refund:RF-3"))
    assert event is not None
    assert event.profile_id == order["profile_id"] is not None  # on the buyer's own profile


def test_allocation_never_gives_a_line_more_than_it_cost() -> None:
    assert orders.allocate(2, [1, 1, 1]) == [1, 1, 0]
    assert orders.allocate(100, [300, 200, 100]) == [51, 33, 16]
    assert orders.allocate(0, [5, 5]) == [0, 0]
    for total in range(0, 12):
        weights = [5, 3, 3]
        shares = orders.allocate(total, weights)
        assert sum(shares) == total
        assert all(0 <= s <= w for s, w in zip(shares, weights, strict=True))


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.id for e in ENDPOINTS])
def test_keys_scopes_and_isolation(client: TestClient, db: Session, world: dict[str, Any],
                                   endpoint: Endpoint) -> None:
    assert post(client, world, ORDER).status_code == 201

    def call(secret: str | None) -> Any:
        return client.request(endpoint.method, endpoint.path, json=endpoint.body,
                              headers=bearer(secret) if secret else {})

    assert call(None).status_code == 401
    assert call("lja_wrong").status_code == 401
    assert call(world["write_a"]).status_code == 403
    reader = make_admin_key(db, world["a"], "orders:read")
    unrelated = make_admin_key(db, world["a"], "catalogue:write")
    db.commit()
    assert call(unrelated).status_code == 403
    assert call(reader).status_code == (403 if endpoint.scope.endswith("write") else 200)
    other = call(world["admin_b"])
    if "SO-1" in endpoint.path:
        assert other.status_code == 404
    elif endpoint.method == "GET":
        assert other.json()["items"] == []
    else:
        assert other.status_code == 422  # merchant B has no such products or store
    assert orders.get_order(db, world["a"].id, "SO-1").refunded_fen == 0
