"""A merchant's identity rules: identifier types with priority and per-profile limits, blocked values.

Stored as one JSON document per merchant (``identity_settings``); until an operator saves one, the
defaults below apply, and every rule is editable, including the default blocked values.

Priority decides which link is dropped when a merge would break a limit: the message is attributed to
its highest-priority identifier, and lower-priority identifiers that would break a limit are left
unlinked (and recorded as a conflict). Limits are per *merged* profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from lianjie.db import store_document
from lianjie.errors import ValidationFailed
from lianjie.identity.models import IdentitySettings

PII_TYPES = frozenset({"phone", "email"})

DEFAULT_TYPES: dict[str, dict[str, int]] = {
    "user_id": {"priority": 100, "limit": 1},
    "member_no": {"priority": 90, "limit": 1},
    "wechat_unionid": {"priority": 80, "limit": 1},
    "phone": {"priority": 70, "limit": 3},
    "email": {"priority": 60, "limit": 3},
    "wecom_external_userid": {"priority": 55, "limit": 5},
    "wechat_openid": {"priority": 50, "limit": 5},
    "device_id": {"priority": 30, "limit": 20},
    "anonymous_id": {"priority": 20, "limit": 100},
}

# Values that never identify anyone: what SDKs send for a missing id and what cashiers type for guests.
DEFAULT_BLOCKED: dict[str, list[str]] = {
    "*": ["", "null", "undefined", "none", "nil", "nan", "0", "-1", "unknown", "test", "guest",
          "anonymous", "[object object]", "n/a"],
    "phone": ["+8613800138000", "+8613800000000", "+8600000000000", "+8611111111111", "+8613888888888",
              "+8613000000000", "+8618888888888", "+8612345678901", "00000000000"],
    "email": ["test@test.com", "test@example.com", "a@a.com", "noreply@example.com"],
}

DEFAULT_SUSPICIOUS_LINKS = 5  # a value that links this many profiles within the window is reported


@dataclass(frozen=True)
class TypeRule:
    priority: int
    limit: int


@dataclass(frozen=True)
class IdentityConfig:
    types: dict[str, TypeRule]
    blocked: dict[str, frozenset[str]]

    def is_blocked(self, type_: str, normalised: str) -> bool:
        """Checked after normalisation, so '138 0013 8000' and '+86 13800138000' are both caught."""
        lowered = normalised.strip().lower()
        return lowered in self.blocked.get("*", frozenset()) or normalised in self.blocked.get(type_, frozenset())

    def rule(self, type_: str) -> TypeRule:
        return self.types[type_]

    def to_json(self) -> dict[str, Any]:
        return {"types": {name: {"priority": r.priority, "limit": r.limit} for name, r in self.types.items()},
                "blocked": {kind: sorted(values) for kind, values in self.blocked.items()}}


def default_document() -> dict[str, Any]:
    return {"types": {k: dict(v) for k, v in DEFAULT_TYPES.items()},
            "blocked": {k: list(v) for k, v in DEFAULT_BLOCKED.items()}}


def parse_document(doc: dict[str, Any]) -> IdentityConfig:
    """Validate an identity settings document (as an operator may edit it)."""
    types_doc = doc.get("types")
    if not isinstance(types_doc, dict) or not types_doc:
        raise ValidationFailed("identity settings need a non-empty 'types' object", field="types")
    types: dict[str, TypeRule] = {}
    for name, rule in types_doc.items():
        where = f"types.{name}"
        if not isinstance(rule, dict) or not isinstance(rule.get("priority"), int) \
                or not isinstance(rule.get("limit"), int) or rule["limit"] < 1:
            raise ValidationFailed(f"{where} needs an integer 'priority' and a 'limit' >= 1", field=where)
        types[name] = TypeRule(priority=rule["priority"], limit=rule["limit"])
    for required in ("user_id", "anonymous_id"):
        if required not in types:
            raise ValidationFailed(f"the {required!r} type cannot be removed", field=f"types.{required}")
    blocked_doc = doc.get("blocked", {})
    if not isinstance(blocked_doc, dict) or not all(
            isinstance(v, list) and all(isinstance(x, str) for x in v) for v in blocked_doc.values()):
        raise ValidationFailed("'blocked' maps a type (or '*') to a list of strings", field="blocked")
    blocked = {kind: frozenset(v.strip().lower() if kind == "*" else v for v in values)
               for kind, values in blocked_doc.items()}
    return IdentityConfig(types=types, blocked=blocked)


def load_config(session: Session, tenant_id: int) -> IdentityConfig:
    """The merchant's rules: the saved document, or the defaults until an operator saves one.

    Reading never writes, so it is safe in any transaction (a read that wrote would need SQLite's
    write lock on every ingestion request).
    """
    row = session.get(IdentitySettings, tenant_id)
    return parse_document(row.config if row is not None else default_document())


def save_config(session: Session, tenant_id: int, doc: dict[str, Any]) -> IdentityConfig:
    config = parse_document(doc)
    store_document(session, IdentitySettings, tenant_id, config.to_json())
    return config
