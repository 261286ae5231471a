"""Keeping personal information out of plain columns: traits and event payloads are split in two.

PIPL and DESIGN.md ask for PII encrypted at rest. An event is stored as the message minus its
personal fields (name, phone, email, address, birthday, IP …) plus one AES-GCM blob holding exactly
those fields by path, so export can put the message back together and erasure only drops the blob.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

import orjson

from lianjie.crypto import PiiCipher

PII_TRAITS = frozenset({
    "name", "first_name", "last_name", "firstName", "lastName", "username", "phone", "mobile", "phone_number",
    "phoneNumber", "email", "address", "birthday", "id_card", "idCard", "avatar",
})
# Not "name": in the Segment spec an event's name property is a product's or a page's (Product Viewed,
# Page), which segments and analytics read, not a person's.
PII_PROPERTIES = frozenset({"phone", "mobile", "email", "address"})
_PLACES: tuple[tuple[tuple[str, ...], frozenset[str]], ...] = (
    (("traits",), PII_TRAITS),
    (("context", "traits"), PII_TRAITS),
    (("properties",), PII_PROPERTIES),
    (("context",), frozenset({"ip"})),
)


def is_map(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """``isinstance(value, Mapping)``, with the common cases (a dict from JSON, or nothing) first:
    ABC checks are slow, and identifiers and personal fields are looked for several times a message."""
    return type(value) is dict or (value is not None and isinstance(value, Mapping))


def _child(message: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node = message.get(path[0])
    if len(path) == 1 or not is_map(node):
        return node
    return _child(node, path[1:])


def _personal(node: Mapping[str, Any], keys: frozenset[str]) -> list[str]:
    """The personal keys of ``node``, looping over whichever of the two is smaller."""
    if len(node) < len(keys):
        return [k for k in node if k in keys]
    return [k for k in keys if k in node]


def split(message: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(message without PII, {"traits.phone": "...", ...})``; the input is not modified.

    Only the objects on the way to a personal field are copied, which keeps this cheap on the
    ingestion hot path: most messages carry none, and ``isdisjoint`` finds that out in C.
    """
    found: dict[str, Any] = {}
    clean = message
    for path, keys in _PLACES:
        node = _child(message, path)
        if not is_map(node) or keys.isdisjoint(node):
            continue
        if clean is message:
            clean = dict(message)
        parent = clean
        for key in path:  # copy each object along the path, then drop the personal keys
            parent[key] = dict(parent[key])
            parent = parent[key]
        for key in _personal(node, keys):
            found[".".join((*path, key))] = parent.pop(key)
    return clean, found


def join(clean: dict[str, Any], found: Mapping[str, Any]) -> dict[str, Any]:
    """Put the personal fields back (for a PIPL export)."""
    whole: dict[str, Any] = orjson.loads(orjson.dumps(clean))
    for dotted, value in found.items():
        *parents, leaf = dotted.split(".")
        node = whole
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return whole


def unseal(cipher: PiiCipher, blob: bytes | None) -> dict[str, Any]:
    if not blob:
        return {}
    value: dict[str, Any] = orjson.loads(cipher.decrypt(blob))
    return value
