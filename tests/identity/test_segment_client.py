"""The official Segment Python client, pointed at a real lianjie server, resolves one person."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from segment.analytics import Client
from segment.analytics.request import APIError

from lianjie import migrate
from lianjie.db import create_db_engine, make_session_factory, transaction
from tests.factories import make_admin_key, make_merchant, make_write_key
from tests.processes import Cli, http_get, server


@pytest.fixture
def running(tmp_path: Path, database_url: str | None) -> Any:
    """A served merchant with write keys for three sources and an admin key. The database is set up
    in this process (a CLI run per key cost about 3 s each); only the server is a process of its own."""
    (tmp_path / "var").mkdir()
    engine = create_db_engine(database_url or f"sqlite:///{tmp_path / 'var' / 'lianjie.db'}")
    migrate.upgrade_engine(engine)
    with transaction(make_session_factory(engine), write=True) as session:
        merchant = make_merchant(session, "huamei", "华美生活")
        keys = {source: make_write_key(session, merchant, source) for source in ("web", "miniprogram", "pos")}
        admin = make_admin_key(session, merchant, "profiles:write")
    engine.dispose()
    with server(Cli(tmp_path, database_url)) as base:
        yield base, keys, admin


def _client(base: str, key: str, errors: list[Any]) -> Client:
    return Client(key, host=base, sync_mode=True, gzip=True, max_retries=1,
                  on_error=lambda error, batch: errors.append((error, batch)))


def _api(base: str, admin: str, path: str) -> Any:
    status, body = http_get(base + path, {"Authorization": f"Bearer {admin}"})
    assert status == 200, body
    return json.loads(body)


def test_anonymous_web_then_miniprogram_login_then_store_payment(running: Any) -> None:
    base, keys, admin = running
    errors: list[Any] = []
    web = _client(base, keys["web"], errors)
    web.page(anonymous_id="browser-7f3a", category="商品", name="连衣裙详情", properties={"path": "/p/123"})
    web.track(anonymous_id="browser-7f3a", event="Product Added", properties={"product_id": "SKU-1", "price": 399})
    web.identify(anonymous_id="browser-7f3a", user_id="M00042", traits={"city": "杭州"})
    mini = _client(base, keys["miniprogram"], errors)
    mini.identify(user_id="M00042", traits={"wechat_unionid": "o6_bmasdasdsad6_2sgVt7hMZOPfL",
                                            "wechat_openid": "oLVPpjqs9BhvzwPj5A-vTYAX3GLc",
                                            "wechat_appid": "wx1234567890abcdef"})
    mini.screen(user_id="M00042", name="会员中心")
    pos = _client(base, keys["pos"], errors)
    pos.track(anonymous_id="till-3-txn-8812", event="Order Completed",
              properties={"order_id": "SH001-8812", "total": 899.0, "currency": "CNY"},
              context={"traits": {"phone": "13912345678", "wechat_unionid": "o6_bmasdasdsad6_2sgVt7hMZOPfL"}})
    pos.alias(previous_id="M00042", user_id="member-42")
    assert errors == []

    found = _api(base, admin, "/api/v1/profiles?phone=%2B8613912345678")["items"]
    assert len(found) == 1
    person = _api(base, admin, f"/api/v1/profiles/{found[0]['id']}")
    assert person["event_count"] == 7
    assert {e["source"] for e in _api(base, admin, f"/api/v1/profiles/{person['id']}/events")["items"]} == {
        "web", "miniprogram", "pos"}
    identifiers = {(i["type"], i["value"]) for i in person["identifiers"]}
    assert ("anonymous_id", "browser-7f3a") in identifiers
    assert ("user_id", "member-42") in identifiers
    assert ("wechat_openid", "wx1234567890abcdef:oLVPpjqs9BhvzwPj5A-vTYAX3GLc") in identifiers
    assert person["traits"]["city"] == "杭州"
    library = _api(base, admin, f"/api/v1/profiles/{person['id']}/events?limit=1")["items"][0]["payload"]
    assert library["context"]["library"]["name"] == "analytics-python"
    for lookup in ("anonymous_id=browser-7f3a", "user_id=M00042", "wechat_unionid=o6_bmasdasdsad6_2sgVt7hMZOPfL"):
        assert [p["id"] for p in _api(base, admin, f"/api/v1/profiles?{lookup}")["items"]] == [person["id"]]


def test_resending_the_same_messages_stores_nothing_twice(running: Any) -> None:
    base, keys, admin = running
    errors: list[Any] = []
    client = _client(base, keys["web"], errors)
    for _ in range(2):
        for n in range(3):
            client.track(user_id="U1", event="Viewed", message_id=f"fixed-{n}")
    assert errors == []
    person = _api(base, admin, "/api/v1/profiles?user_id=U1")["items"][0]
    assert person["event_count"] == 3


def test_the_official_client_reads_our_error_bodies(running: Any) -> None:
    """Segment's client reads ``code`` and ``message`` at the top of an error body (it raised KeyError)."""
    base, _, _ = running
    with pytest.raises(APIError) as raised:  # in sync mode the client raises what it read
        _client(base, "ljw_not-a-real-key", []).track(user_id="M00042", event="Product Viewed")
    assert (raised.value.status, raised.value.code) == (401, "invalid_api_key")
    assert "API key" in raised.value.message
