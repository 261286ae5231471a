"""Programme edits never destroy settings: PUT takes the whole document, PATCH merges (RFC 7396), every
saved version is kept with who saved it, a rollback saves an old version again, and every save is in
the audit log."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from lianjie.loyalty.programme import FIELDS, ProgrammeConfig
from tests.factories import make_merchant
from tests.loyalty.helpers import admin, audit_log

P = "/api/v1/loyalty/programme"
TIERS = [{"code": "member", "name": "会员", "threshold": 0}, {"code": "gold", "name": "金卡", "threshold": 1000}]


def whole(**changes: Any) -> dict[str, Any]:
    """A whole programme document: the defaults with ``changes``."""
    return ProgrammeConfig().model_dump(mode="json") | changes


def test_put_refuses_a_partial_document_and_names_every_missing_field(client: TestClient, db: Session) -> None:
    h, _ = admin(db, make_merchant(db))
    db.commit()
    assert client.put(P, json=whole(points_per_yuan="2", tiers=TIERS), headers=h).status_code == 200
    partial = client.put(P, json={"points_per_yuan": "3", "expiry": {"kind": "never"}}, headers=h)
    assert partial.status_code == 422, partial.text
    error = partial.json()["error"]
    assert error["code"] == "programme_incomplete"
    assert error["details"]["missing"] == [f for f in FIELDS if f not in ("points_per_yuan", "expiry")]
    assert "tiers" in error["message"]
    kept = client.get(P, headers=h).json()
    assert (kept["points_per_yuan"], kept["tiers"][1]["code"]) == ("2", "gold")  # nothing was reset


def test_patch_merges_nested_objects_and_null_resets_to_the_default(client: TestClient, db: Session) -> None:
    h, _ = admin(db, make_merchant(db))
    db.commit()
    client.put(P, json=whole(pending_days=0, tiers=TIERS, expiry={"kind": "days", "n": 90},
                             qualification={"metric": "spend_fen", "window_days": 180, "grace_days": 10}),
               headers=h)
    patched = client.patch(P, json={"expiry": {"n": 30}, "qualification": {"grace_days": None},
                                    "events": {"Birthday": None, "Store Checked In": 8, "Shared": 3},
                                    "pending_days": None}, headers=h)
    assert patched.status_code == 200, patched.text
    rules = client.get(P, headers=h).json()
    assert rules == patched.json()
    assert rules["expiry"] == {"kind": "days", "n": 30}  # kind kept, n changed
    assert rules["qualification"] == {"metric": "spend_fen", "window_days": 180, "grace_days": 30}  # default 30
    assert rules["events"] == {"Signed Up": 100, "Review Submitted": 20, "Store Checked In": 8, "Shared": 3}
    assert rules["pending_days"] == 7  # null: back to the default
    assert [t["code"] for t in rules["tiers"]] == ["member", "gold"]  # untouched
    bad = client.patch(P, json={"expiry": {"kind": "fortnightly"}}, headers=h)
    assert (bad.status_code, bad.json()["error"]["field"]) == (422, "expiry.kind")
    assert client.get(P, headers=h).json() == rules


def test_every_version_is_kept_and_a_rollback_saves_an_old_one_again(client: TestClient, db: Session) -> None:
    h, actor = admin(db, make_merchant(db))
    db.commit()
    client.put(P, json=whole(points_per_yuan="2", tiers=TIERS), headers=h)
    client.patch(P, json={"points_per_yuan": "3"}, headers=h)
    client.patch(P, json={"tiers": None}, headers=h)
    page = client.get(P + "/versions", params={"limit": 2}, headers=h).json()
    assert page["total"] == 3
    assert [(v["version"], v["change"], v["saved_by"]) for v in page["items"]] == [
        (3, "patch", actor), (2, "patch", actor)]
    assert page["items"][0]["config"]["tiers"] == []
    assert page["items"][0]["saved_at"] >= page["items"][1]["saved_at"]
    rolled = client.post(P + "/versions/1/rollback", headers=h)
    assert rolled.status_code == 201, rolled.text
    assert (rolled.json()["points_per_yuan"], len(rolled.json()["tiers"])) == ("2", 2)
    assert client.get(P, headers=h).json() == rolled.json()
    newest = client.get(P + "/versions", headers=h).json()["items"]
    assert [(v["version"], v["change"], v["rolled_back_to"]) for v in newest] == [
        (4, "rollback", 1), (3, "patch", None), (2, "patch", None), (1, "replace", None)]
    missing = client.post(P + "/versions/99/rollback", headers=h)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "programme_version_not_found")
    assert client.get(P + "/versions", headers=h).json()["total"] == 4


def test_programme_changes_are_in_the_audit_log(client: TestClient, db: Session) -> None:
    h, actor = admin(db, make_merchant(db))
    db.commit()
    client.put(P, json=whole(points_per_yuan="2"), headers=h)
    client.patch(P, json={"pending_days": 3}, headers=h)
    client.post(P + "/versions/1/rollback", headers=h)
    entries = audit_log(client, h, "loyalty_programme.")
    assert [(e["action"], e["target"], e["actor"]) for e in entries] == [
        ("loyalty_programme.rollback", "loyalty_programme:v3", actor),
        ("loyalty_programme.patch", "loyalty_programme:v2", actor),
        ("loyalty_programme.update", "loyalty_programme:v1", actor)]
    rollback, patch, update = entries
    assert update["before"] is None  # the defaults applied until then
    assert update["after"]["points_per_yuan"] == "2"
    assert (patch["before"]["pending_days"], patch["after"]["pending_days"]) == (7, 3)
    assert (rollback["before"]["pending_days"], rollback["after"]["pending_days"]) == (3, 7)
