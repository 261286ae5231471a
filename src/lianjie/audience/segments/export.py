"""A snapshot's members as a file an ad platform's custom audience (人群包 / 客户文件人群) takes.

Formats, as Tencent Ads (腾讯广告 DMP, customer file audiences) documents them and as Ocean Engine
(巨量引擎) and other Chinese platforms take them too:

- ``phone`` + ``md5`` (Tencent ``HASH_MOBILE_PHONE``): MD5 of the 11-digit mainland mobile number,
  digits only (no ``+86``, no spaces), as 32 lower-case hex digits (the platform ignores case).
  ``sha256`` is the same number's SHA-256 (64 hex digits) for platforms that ask for it; ``none`` is
  the 11 digits. Numbers outside mainland China (+86) are left out: these audiences match only them.
- ``openid`` (Tencent ``WECHAT_OPENID``): the WeChat openid as issued, without the app id OneID
  scopes it by internally; ``appid=`` keeps the openids of one official account or mini-program
  (an openid only means something to the platform for the app it was issued by). Hashing an openid
  (md5/sha256 of the openid text) is offered for platforms that take hashed ids.
- ``customer_id``: lianjie's own ids, for joining elsewhere; no personal data, no consent needed.

One value per line (a customer with two phones gives two lines), each value once, after an optional
header line; UTF-8 with ``\\n`` line ends, which is the TXT/CSV layout those uploads take.

Consent: giving a phone number or openid to an ad platform is providing personal information to
another party for marketing, which PIPL (art. 23) allows only with the person's separate consent.
So phone and openid exports hold only customers whose current consent for purpose ``marketing`` on
channel ``all`` is granted (identity's consent model: the latest decision across the customer's
profiles); erased customers have no identifiers left and never appear.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from lianjie.audience.segments.schemas import HashKind, IdType
from lianjie.crypto import PiiCipher
from lianjie.identity.models import Consent, Identifier, Profile
from lianjie.identity.service import identifier_value

BATCH = 5_000
CONSENT_PURPOSE, CONSENT_CHANNEL = "marketing", "all"
IDENTIFIER_TYPES = {IdType.PHONE: "phone", IdType.OPENID: "wechat_openid"}


def mainland_mobile(e164: str) -> str | None:
    """``+8613912345678`` -> ``13912345678``; None for numbers outside mainland China."""
    digits = e164.removeprefix("+86")
    return digits if digits != e164 and len(digits) == 11 and digits.isdigit() else None


def hashed(value: str, how: HashKind) -> str:
    if how is HashKind.MD5:
        return hashlib.md5(value.encode(), usedforsecurity=False).hexdigest()
    if how is HashKind.SHA256:
        return hashlib.sha256(value.encode()).hexdigest()
    return value


def header(id_type: IdType, how: HashKind) -> str:
    return id_type.value if how is HashKind.NONE else f"{id_type.value}_{how.value}"


def _consenting(session: Session, profile_customer: dict[int, int]) -> set[int]:
    """Customers whose latest marketing/all decision (over all their profiles) is a grant."""
    rows = session.execute(select(Consent.profile_id, Consent.granted)
                           .where(Consent.profile_id.in_(list(profile_customer)),
                                  Consent.purpose == CONSENT_PURPOSE, Consent.channel == CONSENT_CHANNEL)
                           .order_by(Consent.recorded_at, Consent.id)).all()
    latest: dict[int, bool] = {}
    for profile_id, granted in rows:
        latest[profile_customer[profile_id]] = granted
    return {customer for customer, granted in latest.items() if granted}


def _values(session: Session, cipher: PiiCipher, tenant_id: int, customers: Sequence[int], id_type: IdType,
            appid: str | None) -> Iterator[str]:
    profiles = session.execute(select(Profile.id, Profile.merged_into_id).where(
        Profile.tenant_id == tenant_id, or_(Profile.id.in_(customers), Profile.merged_into_id.in_(customers)))).all()
    profile_customer = {pid: merged or pid for pid, merged in profiles}
    allowed = _consenting(session, profile_customer)
    wanted = [pid for pid, customer in profile_customer.items() if customer in allowed]
    if not wanted:
        return
    rows = session.scalars(select(Identifier).where(Identifier.tenant_id == tenant_id,
                                                    Identifier.profile_id.in_(wanted),
                                                    Identifier.type == IDENTIFIER_TYPES[id_type])
                           .order_by(Identifier.profile_id, Identifier.id)).all()
    for row in rows:
        value = identifier_value(cipher, row)
        if id_type is IdType.PHONE:
            mobile = mainland_mobile(value)
            if mobile is not None:
                yield mobile
        else:
            app, sep, openid = value.partition(":")
            if not sep:
                app, openid = "", value
            if appid is None or app == appid:
                yield openid


def lines(session: Session, cipher: PiiCipher, tenant_id: int, customers: Sequence[int], id_type: IdType,
          how: HashKind, *, with_header: bool = True, appid: str | None = None) -> Iterator[str]:
    """The file's lines (each ending in a newline), customer by customer in id order."""
    if with_header:
        yield header(id_type, how) + "\n"
    if id_type is IdType.CUSTOMER_ID:
        for customer in customers:
            yield hashed(str(customer), how) + "\n"
        return
    seen: set[str] = set()
    for start in range(0, len(customers), BATCH):
        for value in _values(session, cipher, tenant_id, customers[start:start + BATCH], id_type, appid):
            out = hashed(value, how)
            if out not in seen:
                seen.add(out)
                yield out + "\n"
