from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from lianjie import migrate
from lianjie.app import create_app
from lianjie.config import Settings
from lianjie.db import create_db_engine, is_retryable, make_session_factory, transaction
from lianjie.http import DbSession
from lianjie.tenants.models import Merchant
from tests.factories import bearer, make_admin_key, make_merchant


def test_healthz_reports_the_database(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["database"] in {"sqlite", "postgresql"}


def test_docs_and_openapi_are_served(client: TestClient) -> None:
    assert "swagger" in client.get("/docs").text.lower()
    spec = client.get("/openapi.json").json()
    assert "/api/v1/stores" in spec["paths"]
    assert "/healthz" in spec["paths"]


def test_unknown_route_is_404(client: TestClient) -> None:
    assert client.get("/api/v1/nothing-here").status_code == 404


def test_a_database_locked_past_its_busy_timeout_is_a_503_to_retry_not_a_500(tmp_path: Path) -> None:
    # Another program (a backup, the CLI) holds SQLite's write lock longer than the server waits.
    url = f"sqlite:///{tmp_path / 'lianjie.db'}"
    engine = create_db_engine(url, busy_timeout_ms=100)
    migrate.upgrade_engine(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        key = make_admin_key(session, make_merchant(session))
    store = {"code": "SH001", "name": "上海一店", "city": "上海", "province": "上海", "type": "mall"}
    holder = sqlite3.connect(tmp_path / "lianjie.db", isolation_level=None)
    with TestClient(create_app(Settings(), session_factory=factory)) as client:
        holder.execute("BEGIN IMMEDIATE")
        busy = client.post("/api/v1/stores", json=store, headers=bearer(key))
        holder.execute("ROLLBACK")
        retried = client.post("/api/v1/stores", json=store, headers=bearer(key))
    holder.close()
    engine.dispose()
    assert busy.status_code == 503, busy.text
    assert busy.headers["Retry-After"] == "1"
    assert busy.json()["error"]["code"] == "busy"
    assert retried.status_code == 201, retried.text


def test_unknown_routes_and_wrong_methods_answer_in_the_error_format(client: TestClient) -> None:
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert "/api/v1/nothing-here" in missing.json()["error"]["message"]
    wrong = client.put("/api/v1/stores")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in wrong.headers["Allow"]
    assert "POST" in wrong.headers["Allow"]
    tracking = client.get("/v1/batch")
    assert tracking.status_code == 405
    assert tracking.json()["code"] == "method_not_allowed"  # /v1: also at the top, for Segment's clients
    assert tracking.json()["message"] == tracking.json()["error"]["message"]


def test_tracking_errors_carry_code_and_message_at_the_top(client: TestClient) -> None:
    unauthenticated = client.post("/v1/track", json={"userId": "u1", "event": "X"})
    assert unauthenticated.status_code == 401
    body = unauthenticated.json()
    assert body["code"] == body["error"]["code"] == "missing_api_key"
    assert body["message"] == body["error"]["message"]
    malformed = client.post("/v1/batch", content=b"{not json", headers={"Authorization": "Basic eDo="})
    assert malformed.status_code == 400
    assert malformed.json()["code"] == "invalid"


def _app_with_a_bug(session_factory: Any) -> Any:
    """The real app plus two routes that fail the way bugs do: a Python error, a constraint violated."""
    app = create_app(Settings(), session_factory=session_factory)

    @app.get("/test/python-bug")
    def python_bug() -> None:
        raise ZeroDivisionError("a bug")

    @app.post("/test/integrity-bug")
    def integrity_bug(session: DbSession) -> None:
        # Two merchants with one slug: nothing a client sent, so it is our bug, not a 409.
        session.add_all([Merchant(slug="twin", name="a"), Merchant(slug="twin", name="b")])
        session.flush()

    return app


def test_a_bug_is_a_500_naming_the_request_id_under_which_the_traceback_is_logged(
        session_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    with TestClient(_app_with_a_bug(session_factory)) as client:
        caplog.set_level(logging.ERROR, logger="lianjie.http")
        for method, path in (("GET", "/test/python-bug"), ("POST", "/test/integrity-bug")):
            response = client.request(method, path, headers={"X-Request-Id": f"till-7-{method}"})
            assert response.status_code == 500, response.text
            error = response.json()["error"]
            assert error["code"] == "internal"
            assert error["request_id"] == f"till-7-{method}" == response.headers["X-Request-Id"]
            record = next(r for r in caplog.records if f"till-7-{method}" in r.getMessage())
            assert record.exc_info is not None  # the traceback is in the log, not in the body
            assert "Traceback" not in response.text
        fresh = client.get("/test/python-bug", headers={"X-Request-Id": "not a sane id \x7f"})
        assert len(fresh.json()["error"]["request_id"]) == 32  # a made-up header is replaced by our own id


def test_only_busy_or_lost_databases_are_retryable(engine: Engine) -> None:
    """Real errors from the real engines: a lock that stays taken is a 503; a broken rule is not."""
    with engine.connect() as holder, engine.connect() as waiter:
        holder.begin()
        merchant_id = holder.execute(text("INSERT INTO merchants (slug, name, currency, timezone, created_at, "
                                          "updated_at) VALUES ('lock', 'x', 'CNY', 'UTC', :t, :t) RETURNING id"),
                                     {"t": dt.datetime(2026, 1, 1)}).scalar_one()
        holder.commit()
        holder.begin()
        holder.execute(text("UPDATE merchants SET name = 'y' WHERE id = :i"), {"i": merchant_id})
        waiter.begin()
        if engine.dialect.name == "postgresql":
            waiter.execute(text("SET LOCAL lock_timeout = '50ms'"))
        else:
            waiter.exec_driver_sql("PRAGMA busy_timeout = 50")
        with pytest.raises(DBAPIError) as locked:
            waiter.execute(text("UPDATE merchants SET name = 'z' WHERE id = :i"), {"i": merchant_id})
        assert is_retryable(locked.value)
        waiter.rollback()
        holder.rollback()
        waiter.begin()
        with pytest.raises(DBAPIError) as duplicate:
            waiter.execute(text("INSERT INTO merchants (slug, name, currency, timezone, created_at, updated_at) "
                                "VALUES ('lock', 'x', 'CNY', 'UTC', :t, :t)"), {"t": dt.datetime(2026, 1, 1)})
        assert not is_retryable(duplicate.value)
        waiter.rollback()
        waiter.begin()
        with pytest.raises(DBAPIError) as bad_sql:
            waiter.execute(text("SELECT no_such_column FROM merchants"))
        assert not is_retryable(bad_sql.value)
        waiter.rollback()
        holder.begin()
        holder.execute(text("DELETE FROM merchants WHERE id = :i"), {"i": merchant_id})
        holder.commit()


def test_a_nul_character_anywhere_in_a_request_is_a_422_naming_where(client: TestClient, db: Any) -> None:
    key = make_admin_key(db, make_merchant(db))
    db.commit()
    store = {"code": "SH001", "name": "上海一店", "city": "上海", "province": "上海", "type": "mall"}
    for method, path, body, field in [
        ("GET", "/api/v1/stores?city=%E4%B8%8A%00", None, "query.city"),
        ("GET", "/api/v1/profiles?tag=vip%00", None, "query.tag"),
        ("GET", "/api/v1/stores/SH%00", None, "path"),
        ("POST", "/api/v1/stores", store | {"name": "上海\u0000一店"}, "body.name"),
        ("POST", "/api/v1/orders", {"order_no": "A1", "lines": [{"sku": "S\u0000"}]}, "body.lines[0].sku"),
    ]:
        response = client.request(method, path, json=body, headers=bearer(key))
        assert response.status_code == 422, (path, response.text)
        assert response.json()["error"]["field"] == field
    assert client.get("/api/v1/stores", headers=bearer(key)).json()["total"] == 0
    # An escaped backslash before "u0000" is no NUL: the store is created as sent.
    created = client.post("/api/v1/stores", json=store | {"name": "C:\\u0000"}, headers=bearer(key))
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "C:\\u0000"


@pytest.mark.parametrize("path", ["/api/v1/stores", "/api/v1/staff", "/api/v1/orders", "/api/v1/products",
                                  "/api/v1/profiles", "/api/v1/coupons/templates", "/api/v1/segments",
                                  "/api/v1/api-keys", "/api/v1/audit", "/api/v1/coupons/conflicts"])
def test_any_offset_is_a_page_or_a_422_never_a_500(client: TestClient, db: Any, path: str) -> None:
    key = make_admin_key(db, make_merchant(db))
    db.commit()
    biggest = client.get(f"{path}?offset={2**63 - 1}", headers=bearer(key))
    assert biggest.status_code == 200, biggest.text
    assert biggest.json()["items"] == []
    beyond = client.get(f"{path}?offset=99999999999999999999", headers=bearer(key))
    assert beyond.status_code == 422
    assert beyond.json()["error"]["field"] == "query.offset"


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), [
    ("GET", "/api/v1/profiles?seen_after=2026-12-07", None, 200, None),  # a date or a time without offset: UTC
    ("GET", "/api/v1/profiles?seen_before=2026-12-07T10:00:00", None, 200, None),
    ("GET", "/api/v1/orders?since=0001-01-01T00:00:00%2B14:00", None, 422, "query.since"),  # before year 1 in UTC
    ("GET", "/api/v1/orders?until=9999-12-31T23:59:59-14:00", None, 422, "query.until"),  # after 9999 in UTC
    ("GET", "/api/v1/memberships/kpis/renewal-rate?at=0001-01-01", None, 422, "query.at"),
    ("GET", "/api/v1/memberships/kpis/members?at=9999-12-31", None, 422, "query.at"),
    ("GET", "/api/v1/memberships/kpis/revenue?from=0001-01-01&to=2026-01-31", None, 422, "query.from"),
    ("POST", "/api/v1/segments/preview", {"rule": {"did": "Signed Up", "at_least": 9223372036854775808}}, 400,
     "rule.at_least"),
    ("POST", "/api/v1/segments/preview", {"rule": {"did": "Signed Up", "at_most": 2**70}}, 400, "rule.at_most"),
])
def test_inputs_that_gave_500s_are_answered(client: TestClient, db: Any, method: str, path: str,
                                           body: dict[str, Any] | None, status: int, field: str | None) -> None:
    key = make_admin_key(db, make_merchant(db))
    db.commit()
    response = client.request(method, path, json=body, headers=bearer(key))
    assert response.status_code == status, response.text
    if field is not None:
        assert response.json()["error"]["field"] == field
