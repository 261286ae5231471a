"""HTTP endpoints compatible with the Segment tracking API (``/v1/*``).

Any Segment or RudderStack SDK can send here by changing its host. Authentication is HTTP Basic with
the write key as user name and an empty password, or ``writeKey`` in the body. Bodies may be gzip.

Responses: ``200 {"success": true}`` when every message was stored (or had been before). In a batch
with some bad messages the good ones are stored and the answer is still 200, with ``rejected``
listing ``{index, field, message}`` for each bad one; when no message is usable the answer is 400 with
the same list. A body over the size limits is refused whole with 413.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import zlib
from contextlib import suppress
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from lianjie.crypto import get_cipher
from lianjie.db import stores_times_as_text, transaction, utcnow
from lianjie.errors import BadRequest, LianjieError, PayloadTooLarge, Unauthenticated
from lianjie.identity import recording
from lianjie.identity.config import IdentityConfig, load_config
from lianjie.ingest import service
from lianjie.ingest.commit import PREPARE_CHUNK, group_commit
from lianjie.ingest.messages import MAX_MESSAGE_BYTES, Invalid, parse_time
from lianjie.tenants.keys import authenticate, record_use
from lianjie.tenants.models import ApiKeyKind

router = APIRouter(prefix="/v1", tags=["tracking (Segment-compatible)"])

MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2500


def _decode_body(body: bytes, encoding: str | None, limit: int) -> Any:
    if len(body) > limit:
        raise PayloadTooLarge(f"the request body is larger than {limit // 1024} KB")
    if encoding and encoding.lower().strip() == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, limit + 1)
        except zlib.error:
            raise BadRequest("the body is not valid gzip", field="body") from None
        if len(body) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"the uncompressed body is larger than {limit // 1024} KB")
    elif encoding and encoding.lower().strip() not in ("identity", ""):
        raise LianjieError(f"unsupported Content-Encoding {encoding!r}; send gzip or nothing",
                           code="unsupported_encoding")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}", field="body") from None


def _write_key(authorization: str | None, body: Any) -> str:
    if authorization and authorization.lower().startswith("basic "):
        try:
            user, _, _ = base64.b64decode(authorization[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthenticated("malformed Basic authorization header", code="invalid_api_key") from None
        if user:
            return user
    if isinstance(body, dict) and isinstance(body.get("writeKey"), str) and body["writeKey"]:
        return str(body["writeKey"])
    raise Unauthenticated("send the write key as the Basic auth user name, or as writeKey in the body",
                          code="missing_api_key")


def _ingest(factory: sessionmaker[Session], authorization: str | None, body: Any, implied_type: str | None,
            received_at: dt.datetime) -> service.BatchResult:
    """Authenticate, validate and store; the stored batch is committed before this returns.

    The CPU-bound part (validation, identifiers, PII sealing) runs in this process's CPU turns, a
    chunk of messages at a time, while other batches are being written; the write itself joins the
    process's group commit.
    """
    config, source = _sender(factory, authorization, body)
    raws, batch_sent_at = _messages(body, implied_type)
    committer = group_commit(factory)
    result, prepared = service.BatchResult(), []
    cipher, text_times = get_cipher(), stores_times_as_text(factory)
    for start in range(0, len(raws), PREPARE_CHUNK):
        with committer.cpu.turn():
            ready, bad = service.prepare_batch(cipher, config, source, raws[start:start + PREPARE_CHUNK],
                                               implied_type=implied_type, batch_sent_at=batch_sent_at,
                                               received_at=received_at, text_times=text_times, first_index=start)
        prepared += ready
        result.rejected += bad
    if prepared:
        stored = committer.store(config, source, prepared)
        result.accepted, result.duplicates = stored.accepted, stored.duplicates
    return result


def _sender(factory: sessionmaker[Session], authorization: str | None,
            body: Any) -> tuple[IdentityConfig, recording.Source]:
    """The merchant's identity rules and the event source behind the write key."""
    with transaction(factory) as session:
        caller = authenticate(session, _write_key(authorization, body), ApiKeyKind.WRITE)
        config = load_config(session, caller.tenant_id)
    if caller.usage_stale:
        with suppress(OperationalError), transaction(factory, write=True) as session:
            record_use(session, caller)  # best effort: a busy database must not refuse the events
    return config, recording.Source(caller.tenant_id, caller.source)


def _messages(body: Any, implied_type: str | None) -> tuple[list[Any], dt.datetime | None]:
    """The messages of a batch body (with its sentAt) or of a single call's."""
    if implied_type is not None:
        return [body], None
    if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
        raise BadRequest("a batch body is {\"batch\": [...]}", field="batch")
    raws: list[Any] = body["batch"]
    if len(raws) > MAX_BATCH_MESSAGES:
        raise PayloadTooLarge(f"a batch holds at most {MAX_BATCH_MESSAGES} messages; this one has {len(raws)}")
    return raws, _sent_at(body)


def _sent_at(body: dict[str, Any]) -> dt.datetime | None:
    try:
        return parse_time(body.get("sentAt"), "sentAt")
    except Invalid as exc:
        raise BadRequest(exc.message, field="sentAt") from None


async def _handle(request: Request, implied_type: str | None, authorization: str | None,
                  content_encoding: str | None) -> JSONResponse:
    received_at = utcnow()
    limit = MAX_BATCH_BYTES if implied_type is None else MAX_MESSAGE_BYTES
    body = _decode_body(await request.body(), content_encoding, limit)
    result = await run_in_threadpool(_ingest, request.app.state.session_factory, authorization, body,
                                     implied_type, received_at)
    rejected = [{"index": r.index, "field": r.field, "message": r.message} for r in result.rejected]
    if rejected and not (result.accepted or result.duplicates):
        first = rejected[0]
        where = f"message {first['index']}" + (f", field {first['field']}" if first["field"] else "")
        message = f"{where}: {first['message']}" if implied_type is None else \
            f"{first['field'] or 'body'}: {first['message']}"
        return JSONResponse({"success": False, "code": "invalid", "message": message,
                             "error": {"code": "invalid", "message": message, "field": first["field"],
                                       "rejected": rejected}}, status_code=400)
    payload: dict[str, Any] = {"success": True}
    if implied_type is None:
        payload |= {"accepted": result.accepted, "duplicates": result.duplicates, "rejected": rejected}
    return JSONResponse(payload)


Auth = Annotated[str | None, Header(include_in_schema=False)]
Encoding = Annotated[str | None, Header(alias="Content-Encoding", include_in_schema=False)]
_OPENAPI = {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}, "required": True}}


def _single(kind: str) -> Any:
    async def endpoint(request: Request, authorization: Auth = None, content_encoding: Encoding = None) -> JSONResponse:
        return await _handle(request, kind, authorization, content_encoding)

    endpoint.__name__ = f"{kind}_call"
    endpoint.__doc__ = f"One `{kind}` message (Segment spec)."
    return endpoint


for _kind in ("identify", "track", "page", "screen", "group", "alias"):
    router.add_api_route(f"/{_kind}", _single(_kind), methods=["POST"], openapi_extra=_OPENAPI)


@router.post("/batch", openapi_extra=_OPENAPI)
async def batch(request: Request, authorization: Auth = None, content_encoding: Encoding = None) -> JSONResponse:
    """Up to 2,500 messages (500 KB): `{"batch": [...], "sentAt": ...}`; bad messages are listed, not fatal."""
    return await _handle(request, None, authorization, content_encoding)


@router.post("/import", include_in_schema=False)
async def import_(request: Request, authorization: Auth = None, content_encoding: Encoding = None) -> JSONResponse:
    """Segment's older name for /v1/batch."""
    return await _handle(request, None, authorization, content_encoding)
