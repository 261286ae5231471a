"""``GET /api/v1/jobs``: the schedule and each run's part of the calling merchant, behind ``jobs:read``."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from lianjie import jobruns
from tests.endpoints import Endpoint, check_keys_and_scopes
from tests.factories import bearer, make_admin_key, make_merchant, make_write_key

ENDPOINTS = [Endpoint("GET", "/api/v1/jobs", "jobs:read")]


def test_keys_and_scopes(client: TestClient, db: Session) -> None:
    shop = make_merchant(db)
    write_key, full_key = make_write_key(db, shop), make_admin_key(db, shop)
    db.commit()
    check_keys_and_scopes(db, shop, ENDPOINTS[0],
                          lambda secret: client.get("/api/v1/jobs", headers=bearer(secret) if secret else {}),
                          write_key=write_key, full_key=full_key, read_scope="jobs:read",
                          unrelated_scope="profiles:read")


def test_a_merchant_never_sees_another_merchants_part(client: TestClient, db: Session,
                                                      session_factory: sessionmaker[Session]) -> None:
    a, b = make_merchant(db, "huamei"), make_merchant(db, "yuedong", "悦动运动")
    keys = {a.id: make_admin_key(db, a, "jobs:read"), b.id: make_admin_key(db, b, "jobs:read")}
    db.commit()
    run = jobruns.start(session_factory, "expire-points", "schedule")
    parts = jobruns.RunParts()
    parts.done(a.id, {"expired": 80})
    jobruns.finish(session_factory, run, result={"merchants": 1, "expired": 80}, parts=parts)
    shown = {}
    for tenant_id, key in keys.items():
        body = client.get("/api/v1/jobs", params={"runs": 1}, headers=bearer(key)).json()
        (expiry,) = [j for j in body["jobs"] if j["name"] == "expire-points"]
        shown[tenant_id] = expiry["last_runs"]
    assert [(r["id"], r["concerned"], r["result"]) for r in shown[a.id]] == [(run, True, {"expired": 80})]
    assert [(r["id"], r["concerned"], r["result"]) for r in shown[b.id]] == [(run, False, None)]
    assert "80" not in str(shown[b.id][0]["result"])
    assert client.get("/api/v1/jobs", params={"runs": 0}, headers=bearer(keys[a.id])).status_code == 422
