"""Many tills at once against a real database: concurrent HTTP requests, each its own committed
transaction, through an app whose sessions come from a real engine (PostgreSQL and SQLite)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from lianjie.app import create_app
from lianjie.commerce.models import Order, OrderLine, Refund
from lianjie.config import Settings
from lianjie.db import make_session_factory, transaction
from lianjie.identity.models import Event
from tests.commerce.test_catalogue import tree
from tests.factories import bearer, make_admin_key, make_merchant, make_store

COPIES = 20
ORDER: dict[str, Any] = {"order_no": "SO-1", "ordered_at": "2026-03-08T14:30:00+08:00", "store_code": "SH001",
                         "channel": "offline", "buyer": {"member_no": "M001"},
                         "lines": [{"sku": "SKU-1", "quantity": 2, "unit_price_fen": 2000},
                                   {"sku": "SKU-2", "quantity": 1, "unit_price_fen": 1000}]}


@pytest.fixture
def shop(engine_for_threads: Engine) -> Iterator[tuple[TestClient, dict[str, str], Engine]]:
    """A merchant with products and a store, and a client whose every request commits on its own."""
    factory = make_session_factory(engine_for_threads)
    with transaction(factory, write=True) as session:
        merchant = make_merchant(session)
        tree(session, merchant.id)
        make_store(session, merchant)
        headers = bearer(make_admin_key(session, merchant))
    app = create_app(Settings(), session_factory=factory)
    with TestClient(app) as client:
        # A first write notes the key's use (a row lock every request of the minute would queue on).
        assert client.put("/api/v1/categories/C9", json={"code": "C9", "name": "新品"}, headers=headers).is_success
        yield client, headers, engine_for_threads


def at_once(count: int, send: Callable[[int], Any]) -> list[Any]:
    """``send(i)`` from ``count`` threads released together; the responses in thread order."""
    barrier = threading.Barrier(count)
    answers: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            answers[i] = send(i)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return answers


def count(engine: Engine, model: type[Any]) -> int:
    with transaction(make_session_factory(engine)) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_identical_orders_sent_at_once_are_one_order_answered_201_then_200(shop: Any) -> None:
    client, headers, engine = shop
    answers = at_once(COPIES, lambda _: client.post("/api/v1/orders", json=ORDER, headers=headers))
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 1, 200: COPIES - 1}, [a.text for a in answers if a.status_code >= 300][:3]
    first = next(a.json() for a in answers if a.status_code == 201)
    assert all(a.json() == first for a in answers)  # every retry got the stored order
    assert (count(engine, Order), count(engine, OrderLine), count(engine, Event)) == (1, 2, 1)


def test_different_orders_under_one_number_at_once_store_one_and_name_the_fields(shop: Any) -> None:
    client, headers, engine = shop

    def send(i: int) -> Any:
        body = ORDER | {"lines": [ORDER["lines"][0] | {"quantity": 1 + i % 2}, ORDER["lines"][1]]}
        return client.post("/api/v1/orders", json=body, headers=headers)

    answers = at_once(COPIES, send)
    statuses = Counter(a.status_code for a in answers)
    assert statuses[201] == 1
    assert statuses[201] + statuses[200] + statuses[409] == COPIES
    winner = next(a.json() for a in answers if a.status_code == 201)
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json()["error"]["code"] == "order_exists"
            assert set(answer.json()["error"]["details"]) == {"lines[0].quantity", "lines[0].list_fen"}
        else:
            assert answer.json() == winner
    assert count(engine, Order) == 1


def test_whole_order_refunds_racing_never_refund_more_than_was_paid(shop: Any) -> None:
    client, headers, engine = shop
    order = client.post("/api/v1/orders", json=ORDER, headers=headers).json()
    answers = at_once(COPIES, lambda i: client.post("/api/v1/orders/SO-1/refunds", json={"refund_no": f"RF-{i}"},
                                                    headers=headers))
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 1, 422: COPIES - 1}, statuses
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 422} == {"refund_exceeds_order"}
    stored = client.get("/api/v1/orders/SO-1", headers=headers).json()
    assert (stored["refunded_fen"], stored["status"]) == (order["paid_fen"], "refunded")
    assert [line["refunded_fen"] for line in stored["lines"]] == [line["paid_fen"] for line in order["lines"]]
    assert count(engine, Refund) == 1


def test_line_refunds_racing_never_refund_a_line_twice(shop: Any) -> None:
    client, headers, engine = shop
    client.post("/api/v1/orders", json=ORDER, headers=headers)

    def send(i: int) -> Any:
        body = {"refund_no": f"RF-{i}", "lines": [{"line_no": 1 + i % 2, "quantity": 1}]}
        return client.post("/api/v1/orders/SO-1/refunds", json=body, headers=headers)

    answers = at_once(COPIES, send)
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 3, 422: COPIES - 3}, statuses  # line 1 has two units, line 2 one
    stored = client.get("/api/v1/orders/SO-1", headers=headers).json()
    assert [(line["refunded_quantity"], line["refunded_fen"]) for line in stored["lines"]] == [(2, 4000), (1, 1000)]
    assert stored["refunded_fen"] == 5000
    assert count(engine, Refund) == 3


def test_the_same_refund_sent_at_once_is_one_refund_answered_201_then_200(shop: Any) -> None:
    client, headers, engine = shop
    client.post("/api/v1/orders", json=ORDER, headers=headers)
    refund = {"refund_no": "RF-1", "lines": [{"line_no": 1, "quantity": 1}]}
    answers = at_once(COPIES, lambda _: client.post("/api/v1/orders/SO-1/refunds", json=refund, headers=headers))
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 1, 200: COPIES - 1}, [a.text for a in answers if a.status_code >= 300][:3]
    assert all(a.json() == answers[0].json() for a in answers)
    assert answers[0].json()["refunded_fen"] == 2000
    assert count(engine, Refund) == 1


def test_one_refund_number_sent_for_two_orders_at_once_is_one_refund_and_a_409(shop: Any) -> None:
    client, headers, engine = shop
    for order_no in ("SO-1", "SO-2"):
        client.post("/api/v1/orders", json=ORDER | {"order_no": order_no}, headers=headers)
    answers = at_once(2, lambda i: client.post(f"/api/v1/orders/SO-{i + 1}/refunds", json={"refund_no": "RF-1"},
                                               headers=headers))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    conflict = next(a.json()["error"] for a in answers if a.status_code == 409)
    assert (conflict["code"], set(conflict["details"])) == ("refund_exists", {"order_no"})
    assert count(engine, Refund) == 1
