"""A spend (or hold) refused for too few points is remembered under its idempotency key: a retry with the
same request answers the same refusal, marked replayed, and applies nothing, even after the customer
has earned enough; the same key for a different request is a 409. Over HTTP (SQLite's Python ledger,
PostgreSQL's one-call path) and in the ledger itself on both of PostgreSQL's paths."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lianjie import migrate
from lianjie.db import create_db_engine, make_session_factory, transaction, writer_turn
from lianjie.errors import NotFound
from lianjie.loyalty import fastpath, ledger, service
from lianjie.loyalty.models import PointsEntry, PointsOperation
from tests.factories import bearer, make_admin_key, make_merchant
from tests.loyalty.helpers import check_invariants, person


@pytest.mark.parametrize("hold", [False, True], ids=["spend", "hold"])
def test_a_refused_spend_is_the_answer_to_its_key_for_good(client: TestClient, db: Session, hold: bool) -> None:
    shop = make_merchant(db)
    h = bearer(make_admin_key(db, shop))
    buyer = person(db, shop.id, "U1")
    ledger.earn(db, shop.id, buyer, "opening", points=50)
    db.commit()
    base = f"/api/v1/loyalty/accounts/{buyer}"
    body = {"idempotency_key": "till-1", "points": 80, "hold": hold, "order_no": "T-1"}

    refused = client.post(base + "/spend", headers=h, json=body)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["field"]) == ("insufficient_points", "points")
    assert error["message"] == "80 points asked for but only 50 are spendable"
    assert error["details"]["replayed"] is False

    earned = client.post(base + "/earn", headers=h, json={"idempotency_key": "visit", "points": 100})
    assert earned.status_code == 201, earned.text
    for _ in range(2):  # the timed-out till retries: the same refusal, nothing spent
        again = client.post(base + "/spend", headers=h, json=body)
        assert again.status_code == 422, again.text
        replay = again.json()["error"]
        assert (replay["code"], replay["field"], replay["message"]) == (error["code"], error["field"],
                                                                          error["message"])
        assert replay["details"]["replayed"] is True
    assert client.get(base, headers=h).json()["available"] == 150

    other = client.post(base + "/spend", headers=h, json=body | {"points": 79})
    assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency_key_reused")
    fresh = client.post(base + "/spend", headers=h, json=body | {"idempotency_key": "till-2"})
    assert fresh.status_code == 201, fresh.text
    assert client.get(base, headers=h).json()["available"] == 70
    db.expire_all()
    stored = db.scalars(select(PointsOperation).where(PointsOperation.tenant_id == shop.id,
                                                      PointsOperation.idempotency_key == "till-1")).one()
    assert (stored.points, stored.hold_status, stored.hold_expires_at) == (0, None, None)
    assert db.scalar(select(func.count()).select_from(PointsEntry).where(PointsEntry.operation_id == stored.id)) == 0
    check_invariants(db, shop.id)


@pytest.mark.parametrize("python_ledger", [False, True], ids=["one-call", "python"])
def test_a_refused_hold_holds_nothing_and_cannot_be_settled(db: Session, python_ledger: bool) -> None:
    """On PostgreSQL both ledger paths (the one-call function and the Python statements) remember alike."""
    db.connection().execution_options(**{fastpath.PYTHON_LEDGER: python_ledger})
    shop = make_merchant(db)
    buyer = person(db, shop.id, "U1")
    ledger.earn(db, shop.id, buyer, "opening", points=30)
    with pytest.raises(ledger.InsufficientPoints) as first:
        ledger.spend(db, shop.id, buyer, "till-1", 31, hold=True)
    assert first.value.details == {"replayed": False, "spendable": 30}
    refused = db.scalar(select(PointsOperation.id).where(PointsOperation.idempotency_key == "till-1"))
    assert refused is not None
    ledger.earn(db, shop.id, buyer, "visit", points=30)
    attempt: Any = ledger.try_spend(db, shop.id, buyer, "till-1", 31, hold=True)
    assert (attempt.replayed, attempt.points, attempt.hold_status) == (True, 0, None)
    assert attempt.refusal is not None
    assert (attempt.refusal.message, attempt.refusal.details) == (first.value.message,
                                                                  {"replayed": True, "spendable": 30})
    for settle in (ledger.confirm_hold, ledger.cancel_hold):
        with pytest.raises(NotFound):
            settle(db, shop.id, refused)
    assert service.balance(db, shop.id, buyer).available == 60
    check_invariants(db, shop.id)


@pytest.fixture
def factory(database_url: str | None, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = create_db_engine(database_url or f"sqlite:///{tmp_path / 'lianjie.db'}", pool_size=RETRIES + 2)
    migrate.upgrade_engine(engine)
    yield make_session_factory(engine)
    engine.dispose()


RETRIES = 20


def test_retries_racing_an_earn_all_get_the_one_answer_of_their_key(factory: sessionmaker[Session]) -> None:
    """A till's 20 retries of one spend (80 points, 50 held) sent at once with an earn of 100: whichever
    the database orders first, every retry answers the same (all the one refusal, or all the one
    spend), and the balance is what that answer says."""
    with transaction(factory, write=True) as session:
        shop = make_merchant(session).id
        buyer = person(session, shop, "U1")
        ledger.earn(session, shop, buyer, "opening", points=50)
    answers: list[tuple[str | None, int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(RETRIES + 1)

    def retry() -> None:
        start.wait()
        try:
            with writer_turn(factory), transaction(factory, write=True) as session:  # as the API does
                result = ledger.try_spend(session, shop, buyer, "till-1", 80, order_no="T-1")
            answers.append((result.refusal.code if result.refusal else None, result.operation_id))
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test
            errors.append(exc)

    def earn() -> None:
        start.wait()
        with writer_turn(factory), transaction(factory, write=True) as session:
            ledger.earn(session, shop, buyer, "visit", points=100)

    threads = [threading.Thread(target=retry) for _ in range(RETRIES)] + [threading.Thread(target=earn)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(answers) == RETRIES
    assert len(set(answers)) == 1, answers
    [(refusal, _)] = set(answers)
    assert refusal in (None, "insufficient_points")
    with transaction(factory) as session:
        assert service.balance(session, shop, buyer).available == (150 if refusal else 70)
        check_invariants(session, shop)
