"""Profiles as an operator or integrator uses them: lookup, history, tags, consent, PIPL export/erase."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.identity.models import Event, Identifier
from tests.factories import bearer, make_admin_key, make_merchant
from tests.identity.helpers import customers, msg, send


@pytest.fixture
def setup(db: Session) -> dict[str, Any]:
    shop = make_merchant(db)
    send(db, shop.id, msg("identify", userId="U1", anonymousId="d1",
                          traits={"phone": "13912345678", "name": "王小明", "email": "XM@Example.com", "city": "北京"},
                          context={"app": {"namespace": "wx-app"}}))
    for n in range(25):
        send(db, shop.id, msg(anonymousId="d1", event="Product Viewed" if n % 2 else "Product Added"))
    keys = {"admin": make_admin_key(db, shop), "reader": make_admin_key(db, shop, "profiles:read")}
    db.commit()
    return {"shop": shop, "id": customers(db, shop.id, user_id="U1").pop(), **keys}


def test_lookup_by_any_identifier_in_any_format(client: TestClient, setup: dict[str, Any]) -> None:
    admin = bearer(setup["admin"])
    for params in ({"phone": "+86 139 1234 5678"}, {"phone": "13912345678"}, {"email": "xm@example.com"},
                   {"anonymous_id": "d1"}, {"user_id": "U1", "phone": "13912345678"}):
        found = client.get("/api/v1/profiles", params=params, headers=admin).json()
        assert [p["id"] for p in found["items"]] == [setup["id"]], params
    assert client.get("/api/v1/profiles", params={"phone": "13000000000"}, headers=admin).json()["items"] == []
    bad = client.get("/api/v1/profiles", params={"phone": "abc"}, headers=admin)
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "phone"


def test_personal_data_is_masked_for_read_only_keys(client: TestClient, setup: dict[str, Any]) -> None:
    path = f"/api/v1/profiles/{setup['id']}"
    full = client.get(path, headers=bearer(setup["admin"])).json()
    masked = client.get(path, headers=bearer(setup["reader"])).json()
    assert {"type": "phone", "value": "+8613912345678"}.items() <= next(
        i for i in full["identifiers"] if i["type"] == "phone").items()
    assert next(i for i in masked["identifiers"] if i["type"] == "phone")["value"] == "+86139****5678"
    assert full["traits"]["name"] == "王小明"
    assert "name" not in masked["traits"]
    assert masked["traits"]["city"] == "北京"
    assert full["event_count"] == 26
    assert len(full["recent_events"]) == 10


def test_event_history_pages_newest_first(client: TestClient, setup: dict[str, Any]) -> None:
    path = f"/api/v1/profiles/{setup['id']}/events"
    admin = bearer(setup["admin"])
    first = client.get(path, params={"limit": 10}, headers=admin).json()
    third = client.get(path, params={"limit": 10, "offset": 20}, headers=admin).json()
    assert first["total"] == 26
    assert len(third["items"]) == 6
    times = [e["timestamp"] for e in first["items"]]
    assert times == sorted(times, reverse=True)
    added = client.get(path, params={"event": "Product Added"}, headers=admin).json()
    assert added["total"] == 13
    assert client.get("/api/v1/profiles/999999/events", headers=admin).status_code == 404


def test_tags_and_search(client: TestClient, setup: dict[str, Any]) -> None:
    admin = bearer(setup["admin"])
    tags = client.post(f"/api/v1/profiles/{setup['id']}/tags", json={"add": ["vip", "夏季活动"]}, headers=admin)
    assert tags.json() == sorted(["vip", "夏季活动"])
    assert [p["id"] for p in client.get("/api/v1/profiles", params={"tag": "vip"}, headers=admin).json()["items"]] \
        == [setup["id"]]
    by_trait = client.get("/api/v1/profiles", params={"trait": "city=北京"}, headers=admin).json()
    assert [p["id"] for p in by_trait["items"]] == [setup["id"]]
    client.post(f"/api/v1/profiles/{setup['id']}/tags", json={"remove": ["vip"]}, headers=admin)
    assert client.get("/api/v1/profiles", params={"tag": "vip"}, headers=admin).json()["total"] == 0
    assert client.get("/api/v1/profiles", params={"trait": "city"}, headers=admin).status_code == 422


def test_consent_keeps_history_and_shows_the_latest(client: TestClient, setup: dict[str, Any]) -> None:
    admin = bearer(setup["admin"])
    path = f"/api/v1/profiles/{setup['id']}/consent"
    yes = {"purpose": "marketing", "channel": "sms", "granted": True, "source": "小程序注册",
           "recorded_at": "2026-01-01T08:00:00+08:00"}
    client.post(path, json=yes, headers=admin)
    current = client.post(path, json=yes | {"granted": False, "source": "短信退订 TD",
                                            "recorded_at": "2026-02-01T08:00:00+08:00"}, headers=admin).json()
    assert [(c["channel"], c["granted"], c["source"]) for c in current] == [("sms", False, "短信退订 TD")]
    retried = client.post(path, json=yes | {"granted": False, "source": "短信退订 TD",
                                            "recorded_at": "2026-02-01T08:00:00+08:00"}, headers=admin).json()
    assert retried == current
    assert client.post(path, json=yes | {"channel": "pigeon"}, headers=admin).status_code == 422
    export = client.post(f"/api/v1/profiles/{setup['id']}/export", headers=admin).json()
    assert [c["granted"] for c in export["consent_history"]] == [True, False]


def test_export_returns_everything_with_personal_fields(client: TestClient, setup: dict[str, Any]) -> None:
    export = client.post(f"/api/v1/profiles/{setup['id']}/export", headers=bearer(setup["admin"])).json()
    assert export["profile"]["traits"]["name"] == "王小明"
    assert len(export["events"]) == 26
    identify = next(e for e in export["events"] if e["type"] == "identify")
    assert identify["traits"]["phone"] == "13912345678"


def test_erase_removes_pii_keeps_counts_and_does_not_resurrect(client: TestClient, db: Session,
                                                              setup: dict[str, Any]) -> None:
    admin = bearer(setup["admin"])
    client.post(f"/api/v1/profiles/{setup['id']}/tags", json={"add": ["vip"]}, headers=admin)
    result = client.post(f"/api/v1/profiles/{setup['id']}/erase", headers=admin).json()
    assert result == {"profiles": 1, "identifiers": 4, "events_anonymised": 26}
    after = client.get(f"/api/v1/profiles/{setup['id']}", headers=admin).json()
    assert after["erased"] is True
    assert after["identifiers"] == []
    assert after["traits"] == {}
    assert after["tags"] == []
    assert after["event_count"] == 26
    assert db.scalars(select(Identifier).where(Identifier.tenant_id == setup["shop"].id)).all() == []
    events = db.scalars(select(Event).where(Event.profile_id == setup["id"])).all()
    assert all(e.pii_encrypted is None and e.user_id is None and e.anonymous_id is None for e in events)
    assert client.get("/api/v1/profiles", params={"phone": "13912345678"}, headers=admin).json()["items"] == []
    # The person comes back: a new customer, flagged, not the erased one silently rebuilt.
    send(db, setup["shop"].id, msg("identify", userId="U1", traits={"phone": "13912345678"}))
    db.commit()
    found = client.get("/api/v1/profiles", params={"phone": "13912345678"}, headers=admin).json()["items"]
    assert [p["id"] for p in found] != [setup["id"]]
    back = client.get(f"/api/v1/profiles/{found[0]['id']}", headers=admin).json()
    assert back["reappeared_after_erasure"] is True
    assert back["event_count"] == 1
    again = client.post(f"/api/v1/profiles/{setup['id']}/erase", headers=admin)
    assert again.status_code == 200


def test_identity_settings_are_editable_and_validated(client: TestClient, setup: dict[str, Any]) -> None:
    admin = bearer(setup["admin"])
    settings = client.get("/api/v1/identity/settings", headers=admin).json()
    assert "+8613800138000" in settings["blocked"]["phone"]
    settings["types"]["phone"]["limit"] = 1
    assert client.put("/api/v1/identity/settings", json=settings, headers=admin).json()["types"]["phone"]["limit"] == 1
    settings["types"]["phone"]["limit"] = 0
    bad = client.put("/api/v1/identity/settings", json=settings, headers=admin)
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "types.phone"
    del settings["types"]["user_id"]
    assert client.put("/api/v1/identity/settings", json=settings, headers=admin).status_code == 422
