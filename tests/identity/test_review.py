"""Reviewing the identity graph over the API: pages of merges and conflicts, conflicts resolved with a
decision (the graph checked afterwards), and every review write in the audit log."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

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
