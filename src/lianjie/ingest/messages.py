"""Validating Segment-spec messages and placing them in time.

The rules follow the Segment HTTP tracking API spec: each message needs ``userId`` or
``anonymousId``; ``track`` needs ``event``, ``alias`` needs ``previousId``, ``group`` needs
``groupId``; objects stay objects. Times are corrected for the sender's clock as Segment does:
``timestamp = receivedAt - (sentAt - originalTimestamp)``, so a phone whose clock is an hour fast
still lands its events at the right moment.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from lianjie.identity.recording import Message

TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})
MAX_MESSAGE_BYTES = 32 * 1024
_OBJECT_FIELDS = ("context", "properties", "traits", "integrations")
_REQUIRED = {"track": "event", "alias": "previousId", "group": "groupId"}


class Invalid(Exception):
    """One message is unusable; ``field`` says where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def parse_time(value: Any, field: str) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid(field, "must be an ISO 8601 date-time string")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(field, f"{value!r} is not an ISO 8601 date-time") from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def _id(raw: Mapping[str, Any], field: str) -> str | None:
    value = raw.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Invalid(field, "must be a string")
    text = str(value)
    if len(text) > 200:
        raise Invalid(field, "must be at most 200 characters")
    return text


def validate(raw: Any, *, implied_type: str | None, batch_sent_at: dt.datetime | None,
             received_at: dt.datetime) -> Message:
    """A :class:`Message`, or :class:`Invalid` naming the field that is wrong."""
    if not isinstance(raw, dict):
        raise Invalid("", "each message must be a JSON object")
    type_ = implied_type or raw.get("type")
    if not isinstance(type_, str) or type_ not in TYPES:
        raise Invalid("type", f"must be one of {', '.join(sorted(TYPES))}")
    user_id, anonymous_id = _id(raw, "userId"), _id(raw, "anonymousId")
    if not user_id and not anonymous_id:
        raise Invalid("userId", "a message needs userId or anonymousId")
    required = _REQUIRED.get(type_)
    if required and (not isinstance(raw.get(required), str | int) or raw.get(required) in ("", None)):
        raise Invalid(required, f"a {type_} call needs {required}")
    if type_ == "alias" and not user_id:
        raise Invalid("userId", "an alias call needs userId (the new id)")
    for field in _OBJECT_FIELDS:
        if raw.get(field) is not None and not isinstance(raw[field], dict):
            raise Invalid(field, "must be a JSON object")
    message_id = raw.get("messageId")
    if message_id is None:
        message_id = str(uuid.uuid4())
    elif not isinstance(message_id, str) or not message_id or len(message_id) > 100:
        raise Invalid("messageId", "must be a non-empty string of at most 100 characters")
    original = parse_time(raw.get("originalTimestamp"), "originalTimestamp") or parse_time(
        raw.get("timestamp"), "timestamp")
    sent_at = parse_time(raw.get("sentAt"), "sentAt") or batch_sent_at
    if original is not None and sent_at is not None:
        timestamp = received_at - (sent_at - original)
    else:
        timestamp = original or received_at
    raw["type"] = type_
    return Message(raw, type_, message_id, user_id, anonymous_id, timestamp, original, sent_at)
