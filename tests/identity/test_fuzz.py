"""Fuzzing the tracking and profile APIs with hypothesis: whatever arrives, the answer is never a 5xx."""

from __future__ import annotations

import gzip
import json
import os
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from tests.factories import bearer, make_admin_key, make_merchant, make_write_key
from tests.identity.test_ingest_api import basic

FUZZ = settings(max_examples=int(os.environ.get("LIANJIE_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=20)
FIELDS = ["type", "userId", "anonymousId", "messageId", "timestamp", "sentAt", "originalTimestamp", "event",
          "name", "previousId", "groupId", "traits", "properties", "context", "integrations"]
plausible = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["identify", "track", "page", "screen", "group", "alias", "x"]) | json_values,
    "userId": st.text(max_size=20) | json_values, "anonymousId": st.text(max_size=20) | json_values,
    "messageId": st.text(max_size=120) | json_values,
    "timestamp": st.datetimes().map(lambda d: d.isoformat()) | json_values,
    "event": st.text(max_size=20) | json_values, "previousId": st.text(max_size=10) | json_values,
    "traits": st.dictionaries(st.sampled_from(["phone", "email", "wechat_unionid", "wechat_openid", "name",
                                               "member_no", "city"]), json_values, max_size=4) | json_values,
    "context": st.fixed_dictionaries({}, optional={
        "traits": st.dictionaries(st.sampled_from(["phone", "email", "unionid"]), json_values) | json_values,
        "externalIds": st.lists(st.dictionaries(st.sampled_from(["id", "type", "appid"]), json_values)) | json_values,
        "device": st.dictionaries(st.sampled_from(["id"]), json_values) | json_values,
        "app": json_values}) | json_values,
})


@pytest.fixture
def keys(db: Session) -> dict[str, str]:
    merchant = make_merchant(db)
    out = {"write": make_write_key(db, merchant), "admin": make_admin_key(db, merchant)}
    db.commit()
    return out


@FUZZ
@given(batch=st.lists(plausible | json_values, max_size=8), sent_at=json_values, gzipped=st.booleans())
def test_batches_never_break_the_server(client: TestClient, keys: dict[str, str], batch: list[Any], sent_at: Any,
                                        gzipped: bool) -> None:
    body = json.dumps({"batch": batch, "sentAt": sent_at}).encode()
    headers = basic(keys["write"]) | {"Content-Type": "application/json"}
    if gzipped:
        body, headers = gzip.compress(body), headers | {"Content-Encoding": "gzip"}
    response = client.post("/v1/batch", content=body, headers=headers)
    assert response.status_code < 500, response.text
    assert response.status_code in {200, 400, 413}


@FUZZ
@given(kind=st.sampled_from(["identify", "track", "page", "screen", "group", "alias"]),
       body=plausible | json_values | st.binary(max_size=64))
def test_single_calls_never_break_the_server(client: TestClient, keys: dict[str, str], kind: str, body: Any) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(f"/v1/{kind}", content=content, headers=basic(keys["write"]))
    assert response.status_code < 500, response.text


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["phone", "email", "user_id", "wechat_openid", "wechat_appid", "tag",
                                               "trait", "seen_after", "limit", "offset", "device_id"]),
                              st.text(max_size=20), max_size=4),
       profile_id=st.integers(min_value=-5, max_value=2**70) | st.text(max_size=8),
       body=json_values)
def test_profile_api_never_breaks(client: TestClient, keys: dict[str, str], params: dict[str, str],
                                  profile_id: Any, body: Any) -> None:
    admin = bearer(keys["admin"]) | {"Content-Type": "application/json"}
    profile_id = quote(str(profile_id), safe="")
    raw = json.dumps(body)
    responses = [
        client.get("/api/v1/profiles", params=params, headers=admin),
        client.get(f"/api/v1/profiles/{profile_id}", headers=admin),
        client.get(f"/api/v1/profiles/{profile_id}/events", params=params, headers=admin),
        client.post(f"/api/v1/profiles/{profile_id}/tags", content=raw, headers=admin),
        client.post(f"/api/v1/profiles/{profile_id}/consent", content=raw, headers=admin),
        client.post(f"/api/v1/identity/merges/{profile_id}/undo", content=raw, headers=admin),
        client.post("/api/v1/identity/blocked", content=raw, headers=admin),
        client.put("/api/v1/identity/settings", content=raw, headers=admin),
    ]
    for response in responses:
        assert response.status_code < 500, (response.request.url, response.text)
