"""Reviewing the identity graph over the API: pages of merges and conflicts, conflicts resolved with a
decision (the graph checked afterwards), and every review write in the audit log."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from lianjie import migrate
from lianjie.crypto import get_cipher
from lianjie.db import create_db_engine, make_session_factory, transaction
from lianjie.errors import Conflict
from lianjie.identity import merging
from lianjie.identity.config import load_config
from lianjie.identity.schemas import Decision
from tests.factories import bearer, make_admin_key, make_merchant
from tests.identity.helpers import customers, msg, send


@pytest.fixture
def shop(db: Session) -> dict[str, Any]:
    merchant = make_merchant(db)
    return {"id": merchant.id, "h": bearer(make_admin_key(db, merchant))}


def _merges(db: Session, tenant_id: int, n: int) -> None:
    """``n`` merges: a web visitor each, who then logs in as a member."""
    for i in range(n):
        send(db, tenant_id, msg(anonymousId=f"dev-{i}"))
        send(db, tenant_id, msg("identify", userId=f"U{i}"))
        send(db, tenant_id, msg("identify", userId=f"U{i}", anonymousId=f"dev-{i}"))


def _conflicts(db: Session, tenant_id: int, n: int) -> None:
    """``n`` conflicts: two members with a unionid each, and a message tying one to the other's phone."""
    for i in range(n):
        send(db, tenant_id, msg("identify", userId=f"A{i}", traits={"wechat_unionid": f"XA{i}"}))
        send(db, tenant_id, msg("identify", userId=f"B{i}", traits={"wechat_unionid": f"XB{i}",
                                                                    "phone": f"1390000{i:04d}"}))
        send(db, tenant_id, msg("identify", userId=f"A{i}", traits={"phone": f"1390000{i:04d}"}))


def _all_pages(client: TestClient, path: str, headers: dict[str, str], limit: int,
               **params: Any) -> tuple[list[dict[str, Any]], set[int]]:
    items: list[dict[str, Any]] = []
    totals = set()
    offset = 0
    while True:
        page = client.get(path, params={"limit": limit, "offset": offset, **params}, headers=headers).json()
        assert (page["limit"], page["offset"]) == (limit, offset)
        totals.add(page["total"])
        items += page["items"]
        if not page["items"]:
            return items, totals
        offset += limit


def test_merges_are_pages_that_reach_the_oldest(client: TestClient, db: Session, shop: dict[str, Any]) -> None:
    _merges(db, shop["id"], 5)
    db.commit()
    items, totals = _all_pages(client, "/api/v1/identity/merges", shop["h"], 2)
    assert totals == {5}
    ids = [m["id"] for m in items]
    assert len(ids) == 5 == len(set(ids))
    assert ids == sorted(ids, reverse=True)  # newest first, the oldest on the last page
    person = customers(db, shop["id"], user_id="U3").pop()
    mine = client.get("/api/v1/identity/merges", params={"profile_id": person}, headers=shop["h"]).json()
    assert mine["total"] == 1
    assert mine["items"][0]["survivor_id"] == person


def test_conflicts_are_pages_and_keep_the_open_filter(client: TestClient, db: Session, shop: dict[str, Any]) -> None:
    _conflicts(db, shop["id"], 3)
    db.commit()
    items, totals = _all_pages(client, "/api/v1/identity/conflicts", shop["h"], 2)
    assert totals == {3}
    assert len({c["id"] for c in items}) == 3
    oldest = items[-1]["id"]
    resolved = client.post(f"/api/v1/identity/conflicts/{oldest}/resolve", json={"decision": "keep"},
                           headers=shop["h"])
    assert resolved.status_code == 200, resolved.text
    open_page = client.get("/api/v1/identity/conflicts", headers=shop["h"]).json()
    assert open_page["total"] == 2
    assert oldest not in {c["id"] for c in open_page["items"]}
    everything = client.get("/api/v1/identity/conflicts", params={"open_only": False}, headers=shop["h"]).json()
    assert everything["total"] == 3


# ---- resolving conflicts ---------------------------------------------------------------------------

PHONE = "13900001111"


def _conflict_over_a_phone(db: Session, tenant_id: int, client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    """Customer A (A1, unionid XA); customer B (B1, unionid XB) who got the phone from a web visitor
    merged in by it; then a message ties A1 to the phone: A and B would hold two user_ids, so a conflict."""
    send(db, tenant_id, msg("identify", userId="A1", traits={"wechat_unionid": "XA"}))
    send(db, tenant_id, msg("identify", userId="B1", traits={"wechat_unionid": "XB"}))
    send(db, tenant_id, msg("identify", anonymousId="web-b", traits={"phone": PHONE}))
    assert send(db, tenant_id, msg("identify", userId="B1", traits={"phone": PHONE})).merges == 1
    assert send(db, tenant_id, msg("identify", userId="A1", traits={"phone": PHONE})).conflicts == 1
    db.commit()
    items: list[dict[str, Any]] = client.get("/api/v1/identity/conflicts", headers=headers).json()["items"]
    (conflict,) = items
    return conflict


def _customer(client: TestClient, headers: dict[str, str], **identifier: str) -> dict[str, Any] | None:
    found = client.get("/api/v1/profiles", params=identifier, headers=headers).json()["items"]
    assert len(found) <= 1
    if not found:
        return None
    person: dict[str, Any] = client.get(f"/api/v1/profiles/{found[0]['id']}", headers=headers).json()
    return person


def _resolve(client: TestClient, headers: dict[str, str], conflict_id: int, decision: str,
             note: str | None = None) -> Any:
    return client.post(f"/api/v1/identity/conflicts/{conflict_id}/resolve", json={"decision": decision, "note": note},
                       headers=headers)


def _graph(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    """Who holds what: each customer's id, identifiers and event count, by user id (and the phone's holder)."""
    out: dict[str, Any] = {}
    for key, ident in (("A", {"user_id": "A1"}), ("B", {"user_id": "B1"}), ("web", {"anonymous_id": "web-b"}),
                       ("phone", {"phone": PHONE})):
        person = _customer(client, headers, **ident)
        out[key] = None if person is None else {
            "id": person["id"], "events": person["event_count"], "merged": person["merged_ids"],
            "identifiers": sorted((i["type"], i["value"]) for i in person["identifiers"])}
    return out


def test_a_conflict_records_the_identifier_that_would_have_merged(client: TestClient, db: Session,
                                                                   shop: dict[str, Any]) -> None:
    conflict = _conflict_over_a_phone(db, shop["id"], client, shop["h"])
    graph = _graph(client, shop["h"])
    assert conflict["profile_ids"] == [graph["A"]["id"], graph["B"]["id"]]  # the message's customer, the holder
    assert conflict["identifier_type"] == "phone"
    assert conflict["type"] == "user_id"
    assert (conflict["resolved_at"], conflict["decision"], conflict["resolved_by"]) == (None, None, None)


def test_keep_leaves_both_customers_as_they_are(client: TestClient, db: Session, shop: dict[str, Any]) -> None:
    conflict = _conflict_over_a_phone(db, shop["id"], client, shop["h"])
    before = _graph(client, shop["h"])
    response = _resolve(client, shop["h"], conflict["id"], "keep", "the cashier typed B's phone for A")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decision"] == "keep"
    assert body["note"] == "the cashier typed B's phone for A"
    assert body["resolved_by"].startswith("key:")
    assert body["resolved_at"] is not None
    assert _graph(client, shop["h"]) == before
    assert before["phone"]["id"] == before["B"]["id"]
    shown = client.get("/api/v1/identity/conflicts", params={"open_only": False}, headers=shop["h"]).json()
    assert shown["items"][0]["decision"] == "keep"


def test_split_detaches_the_identifier_from_its_holder_to_a_profile_of_its_own(
        client: TestClient, db: Session, shop: dict[str, Any]) -> None:
    conflict = _conflict_over_a_phone(db, shop["id"], client, shop["h"])
    before = _graph(client, shop["h"])
    response = _resolve(client, shop["h"], conflict["id"], "split", "recycled number")
    assert response.status_code == 200, response.text
    outcome = response.json()["outcome"]
    after = _graph(client, shop["h"])
    alone = after["phone"]
    assert alone["id"] == outcome["new_profile_id"]
    assert alone["id"] not in {before["A"]["id"], before["B"]["id"]}
    assert (alone["identifiers"], alone["events"], alone["merged"]) == ([("phone", "+86" + PHONE)], 0, [])
    assert outcome["detached_from_customer"] == before["B"]["id"]
    # The holder keeps everything else: its events, its other identifiers, the web visitor merged in.
    assert after["B"]["id"] == before["B"]["id"]
    assert after["B"]["events"] == before["B"]["events"]
    assert after["B"]["merged"] == before["B"]["merged"]
    assert after["B"]["identifiers"] == [i for i in before["B"]["identifiers"] if i[0] != "phone"]
    assert after["A"] == before["A"]
    # Not blocked: the next message carrying it with A's id merges it into A, no new conflict.
    assert send(db, shop["id"], msg("identify", userId="A1", traits={"phone": PHONE})).merges == 1
    db.commit()
    assert _graph(client, shop["h"])["phone"]["id"] == before["A"]["id"]
    assert client.get("/api/v1/identity/conflicts", headers=shop["h"]).json()["total"] == 0


def test_block_value_blocks_it_and_undoes_the_merges_it_caused(client: TestClient, db: Session,
                                                                shop: dict[str, Any]) -> None:
    conflict = _conflict_over_a_phone(db, shop["id"], client, shop["h"])
    before = _graph(client, shop["h"])
    assert before["web"]["id"] == before["B"]["id"]  # merged in by the phone
    response = _resolve(client, shop["h"], conflict["id"], "block_value")
    assert response.status_code == 200, response.text
    outcome = response.json()["outcome"]
    after = _graph(client, shop["h"])
    assert after["web"]["id"] != after["B"]["id"]
    assert after["B"]["merged"] == []
    assert len(outcome["undone_merges"]) == 1
    assert PHONE not in str(outcome)  # masked
    settings = client.get("/api/v1/identity/settings", headers=shop["h"]).json()
    assert "+86" + PHONE in settings["blocked"]["phone"]
    again = send(db, shop["id"], msg("identify", userId="A1", traits={"phone": PHONE}),
                 msg("identify", userId="B1", traits={"phone": PHONE}))
    assert (again.merges, again.conflicts) == (0, 0)  # the value links no one any more


def test_the_same_decision_again_is_a_replay_and_another_is_refused(client: TestClient, db: Session,
                                                                     shop: dict[str, Any]) -> None:
    conflict = _conflict_over_a_phone(db, shop["id"], client, shop["h"])
    first = _resolve(client, shop["h"], conflict["id"], "split").json()
    graph = _graph(client, shop["h"])
    replay = _resolve(client, shop["h"], conflict["id"], "split")
    assert replay.status_code == 200
    assert replay.json() == first
    other = _resolve(client, shop["h"], conflict["id"], "block_value")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "conflict_already_resolved"
    assert other.json()["error"]["field"] == "body.decision"
    assert _graph(client, shop["h"]) == graph
    assert "+86" + PHONE not in client.get("/api/v1/identity/settings", headers=shop["h"]).json()["blocked"]["phone"]


def test_a_new_identifier_left_unlinked_can_only_be_kept(client: TestClient, db: Session,
                                                         shop: dict[str, Any]) -> None:
    send(db, shop["id"], msg("identify", userId="A1", traits={"wechat_unionid": "XA"}))
    assert send(db, shop["id"], msg("identify", userId="A1", traits={"wechat_unionid": "XZ"})).conflicts == 1
    db.commit()
    (conflict,) = client.get("/api/v1/identity/conflicts", headers=shop["h"]).json()["items"]
    assert conflict["identifier_type"] is None
    for decision in ("split", "block_value"):
        refused = _resolve(client, shop["h"], conflict["id"], decision)
        assert refused.status_code == 422
        assert (refused.json()["error"]["code"], refused.json()["error"]["field"]) == ("decision_not_applicable",
                                                                                     "body.decision")
    assert client.get("/api/v1/identity/conflicts", headers=shop["h"]).json()["total"] == 1
    assert _resolve(client, shop["h"], conflict["id"], "keep").status_code == 200


def test_a_decision_is_required_and_checked(client: TestClient, db: Session, shop: dict[str, Any]) -> None:
    conflict = _conflict_over_a_phone(db, shop["id"], client, shop["h"])
    path = f"/api/v1/identity/conflicts/{conflict['id']}/resolve"
    for body in (None, {}, {"decision": "merge"}, {"decision": "keep", "note": "x" * 501}):
        response = client.post(path, json=body, headers=shop["h"])
        assert 400 <= response.status_code < 500, (body, response.status_code)
    assert client.get("/api/v1/identity/conflicts", headers=shop["h"]).json()["total"] == 1


# ---- the audit log ---------------------------------------------------------------------------------


def _audit(client: TestClient, headers: dict[str, str], action: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get("/api/v1/audit", params={"action": action},
                                             headers=headers).json()["items"]
    return items


def test_every_review_write_is_in_the_audit_log(client: TestClient, db: Session, shop: dict[str, Any]) -> None:
    conflict = _conflict_over_a_phone(db, shop["id"], client, shop["h"])
    h = shop["h"]
    assert _resolve(client, h, conflict["id"], "keep", "checked").status_code == 200
    (resolved,) = _audit(client, h, "identity_conflict.")
    assert resolved["actor"].startswith("key:")
    assert resolved["target"] == f"identity_conflict:{conflict['id']}"
    assert resolved["after"]["decision"] == "keep"
    assert resolved["after"]["note"] == "checked"

    merge_id = client.get("/api/v1/identity/merges", headers=h).json()["items"][0]["id"]
    assert client.post(f"/api/v1/identity/merges/{merge_id}/undo", json={"reason": "wrong"}, headers=h).status_code \
        == 200
    (undone,) = _audit(client, h, "identity_merge.undo")
    assert (undone["target"], undone["after"]["reason"]) == (f"merge:{merge_id}", "wrong")

    blocked = client.post("/api/v1/identity/blocked", json={"type": "phone", "value": "13911112222"}, headers=h)
    assert blocked.status_code == 200
    (block,) = _audit(client, h, "identity.block")
    assert block["after"]["type"] == "phone"
    assert "13911112222" not in str(block)
    assert block["after"]["value"] == "+86139****2222"

    settings = client.get("/api/v1/identity/settings", headers=h).json()
    settings["blocked"]["phone"].remove("+8613911112222")  # unblocking is a settings change
    settings["types"]["phone"]["limit"] = 4
    assert client.put("/api/v1/identity/settings", json=settings, headers=h).status_code == 200
    (changed,) = _audit(client, h, "identity_settings.")
    assert changed["before"]["types"] == {"phone": {"priority": 70, "limit": 3}}
    assert changed["after"]["types"] == {"phone": {"priority": 70, "limit": 4}}
    assert changed["after"]["blocked_removed"] == {"phone": ["+86139****2222"]}
    assert "13911112222" not in str(changed)

    person = _customer(client, h, user_id="A1")
    assert person is not None
    erased = client.post(f"/api/v1/profiles/{person['id']}/erase", headers=h)
    assert erased.status_code == 200
    (erase,) = _audit(client, h, "profile.erase")
    assert erase["target"] == f"profile:{person['id']}"
    assert erase["after"]["identifiers"] == erased.json()["identifiers"] > 0
    assert erase["after"]["profile_ids"] == [person["id"], *person["merged_ids"]]
    assert "A1" not in str(erase["after"])
    assert "XA" not in str(erase["after"])


def test_two_operators_deciding_at_once_one_decision_applies(database_url: str | None, tmp_path: Path) -> None:
    """Committed transactions on threads of their own: a split and a block of one conflict at the same
    moment; one is applied, the other is refused with 409, and the graph shows only the first."""
    engine = create_db_engine(database_url or f"sqlite:///{tmp_path / 'lianjie.db'}")
    migrate.upgrade_engine(engine)
    factory = make_session_factory(engine)
    with transaction(factory, write=True) as session:
        shop = make_merchant(session)
        send(session, shop.id, msg("identify", userId="A1", traits={"wechat_unionid": "XA"}))
        send(session, shop.id, msg("identify", userId="B1", traits={"wechat_unionid": "XB", "phone": PHONE}))
        send(session, shop.id, msg("identify", userId="A1", traits={"phone": PHONE}))
        conflict_id = merging.list_conflicts(session, shop.id)[0][0].id
        tenant_id = shop.id
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def decide(decision: Decision) -> None:
        start.wait()
        try:
            with transaction(factory, write=True) as session:
                merging.resolve_conflict(session, get_cipher(), tenant_id, conflict_id, decision)
            outcomes[decision.value] = "applied"
        except Conflict as exc:
            outcomes[decision.value] = exc.code

    threads = [threading.Thread(target=decide, args=(d,)) for d in (Decision.SPLIT, Decision.BLOCK_VALUE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["applied", "conflict_already_resolved"]
    (winner,) = [d for d, outcome in outcomes.items() if outcome == "applied"]
    with transaction(factory) as session:
        (conflict,), _ = merging.list_conflicts(session, tenant_id, open_only=False)
        holder = customers(session, tenant_id, phone=PHONE)
        blocked = "+86" + PHONE in load_config(session, tenant_id).blocked.get("phone", frozenset())
        b1 = customers(session, tenant_id, user_id="B1")
    engine.dispose()
    assert conflict.decision == winner
    assert blocked == (winner == "block_value")
    assert (holder == b1) == (winner == "block_value")  # a split moved the phone off B1's customer
