"""Finding identifiers in a Segment message and normalising them before they are matched.

A message names its person in several places the Segment spec allows and SDKs use: ``userId``,
``anonymousId``, ``traits`` (identify) or ``context.traits`` (any call), ``context.device.id`` and
``context.externalIds``. Phones become E.164 (+86 when no country is given), emails lower case, and a
WeChat openid is scoped by the app it belongs to (an openid means nothing without its appid).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import phonenumbers

from lianjie.crypto import PiiCipher
from lianjie.identity.config import PII_TYPES, IdentityConfig
from lianjie.identity.pii import is_map

# Trait names SDKs and integrations use for each identifier type.
TRAIT_ALIASES: dict[str, str] = {
    "phone": "phone", "mobile": "phone", "phone_number": "phone", "phoneNumber": "phone",
    "email": "email",
    "member_no": "member_no", "memberNo": "member_no", "member_id": "member_no",
    "wechat_unionid": "wechat_unionid", "unionid": "wechat_unionid", "unionId": "wechat_unionid",
    "wechat_openid": "wechat_openid", "openid": "wechat_openid", "openId": "wechat_openid",
    "wecom_external_userid": "wecom_external_userid", "external_userid": "wecom_external_userid",
    "device_id": "device_id",
}
APPID_KEYS = ("wechat_appid", "appid", "appId", "namespace")  # context.app.namespace: the app id
_CN_MOBILE = re.compile(r"^(?:\+?86)?(1[3-9]\d{9})$")
_SPACING = re.compile(r"[\s()-]")
MAX_VALUE_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Ident:
    """A normalised identifier; ``hash`` is the keyed lookup hash of ``type:value``.

    ``key`` is stored rather than computed: resolution looks identifiers up by it a dozen times per
    message, and a property call per look-up was a visible share of ingestion's time.
    """

    type: str
    value: str
    hash: str
    key: tuple[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (self.type, self.hash))


def normalise_phone(raw: str, default_region: str = "CN") -> str | None:
    """E.164, or None for something that is not a phone number."""
    compact = _SPACING.sub("", raw)
    mobile = _CN_MOBILE.match(compact)
    if mobile:  # the common case, without the cost of a full parse
        return "+86" + mobile.group(1)
    try:
        parsed = phonenumbers.parse(compact, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise(type_: str, raw: Any, scope: str | None = None) -> str | None:
    """The comparable form of an identifier value, or None if it cannot identify anyone."""
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    text = str(raw).strip()
    if not text or len(text) > MAX_VALUE_LENGTH:
        return None
    if type_ == "phone":
        return normalise_phone(text)
    if type_ == "email":
        return text.lower() if "@" in text else None
    if type_ == "wechat_openid" and scope:
        return f"{scope}:{text}"
    return text


def _appid(*sources: Mapping[str, Any] | None) -> str | None:
    for source in sources:
        if not source:
            continue
        for key in APPID_KEYS:
            value = source.get(key)
            if isinstance(value, str) and value:
                return value
    return None


_NOTHING: Mapping[str, Any] = {}


def raw_identifiers(message: Mapping[str, Any]) -> list[tuple[str, Any, str | None]]:
    """Every (type, raw value, scope) a message carries, in the places the Segment spec allows.

    Written as one loop without generators (it runs for every message); the app id that scopes
    an openid is looked for only when a message carries an openid.
    """
    found: list[tuple[str, Any, str | None]] = []
    if (user_id := message.get("userId")) is not None:
        found.append(("user_id", user_id, None))
    if (anonymous_id := message.get("anonymousId")) is not None:
        found.append(("anonymous_id", anonymous_id, None))
    context = message.get("context")
    context = context if is_map(context) else _NOTHING
    traits = message.get("traits")
    traits = traits if is_map(traits) else _NOTHING
    context_traits = context.get("traits")
    context_traits = context_traits if is_map(context_traits) else _NOTHING
    openids = False
    for source in (traits, context_traits):
        for key, value in source.items():
            type_ = TRAIT_ALIASES.get(key)
            if type_ is not None:
                found.append((type_, value, None))
                openids = openids or type_ == "wechat_openid"
    device = context.get("device")
    if is_map(device) and device.get("id") is not None:
        found.append(("device_id", device["id"], None))
    external = context.get("externalIds")
    if not openids and not isinstance(external, list):
        return found
    app = context.get("app")
    appid = _appid(traits, context_traits, app if is_map(app) else None)
    if openids:
        found = [(t, v, appid if t == "wechat_openid" else None) for t, v, _ in found]
    if isinstance(external, list):
        for entry in external:
            kind = entry.get("type") if is_map(entry) else None
            if isinstance(kind, str):
                type_ = TRAIT_ALIASES.get(kind, kind)
                scope = (_appid(entry) or appid) if type_ == "wechat_openid" else None
                found.append((type_, entry.get("id"), scope))
    return found


def extract(message: Mapping[str, Any], config: IdentityConfig, cipher: PiiCipher,
            memo: dict[tuple[str, str, str | None], Ident | None] | None = None) -> list[Ident]:
    """The usable identifiers of a message: known types, normalised, not blocked, each once, strongest first.

    ``memo`` (one per batch and config) remembers what each raw text value became: a batch names
    the same visitor's ids in message after message.
    """
    seen: dict[tuple[str, str], Ident] = {}
    for type_, raw, scope in raw_identifiers(message):
        if memo is None or type(raw) is not str:
            ident = _identify(type_, raw, scope, config, cipher)
        elif (type_, raw, scope) in memo:
            ident = memo[(type_, raw, scope)]
        else:
            ident = memo[(type_, raw, scope)] = _identify(type_, raw, scope, config, cipher)
        if ident is not None and ident.key not in seen:
            seen[ident.key] = ident
    return by_priority(list(seen.values()), config) if len(seen) > 1 else list(seen.values())


def by_priority(idents: list[Ident], config: IdentityConfig) -> list[Ident]:
    """Strongest type first (the merchant's priorities), in message order among equals: the order
    identity resolution reads a message's identifiers in."""
    types = config.types
    return sorted(idents, key=lambda ident: -types[ident.type].priority)


def _identify(type_: str, raw: Any, scope: str | None, config: IdentityConfig, cipher: PiiCipher) -> Ident | None:
    if type_ not in config.types:
        return None
    value = normalise(type_, raw, scope)
    if value is None or config.is_blocked(type_, value):
        return None
    return Ident(type_, value, cipher.lookup_hash(type_, value))


def is_pii(type_: str) -> bool:
    return type_ in PII_TYPES
