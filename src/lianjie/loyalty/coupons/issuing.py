"""Issuing coupons: to one customer, to a list, or a batch of unbound codes for print or QR; claiming
an unbound code; a customer's coupons.

Every issue is one idempotent request: the key is claimed first (``ON CONFLICT DO NOTHING``), and a
repeat returns the coupons issued the first time. Then the template's row is locked and, under that
lock, the per-customer limit is counted over the *whole customer* (every profile merged into it)
and the stock drawn by a conditional UPDATE (``issued = issued + n WHERE issued + n <= stock``), so
200 clients claiming the last 100 coupons at once get exactly 100. Claiming a printed code and
redeeming an unbound one take the same lock before they count (:func:`lock_for_limit`), so the limit
holds whichever way a customer comes by the coupons. A list issue gives each customer
one coupon; customers already at their limit are reported as refused and the others still get
theirs; if the stock cannot cover everyone who may have one, nobody gets one (409).

Codes are 12 characters drawn by ``secrets`` from 30 letters and digits without the ambiguous ones
(0/O, 1/I/L, U), about 59 bits: not guessable, easy to type from a printed slip. They are stored
without separators and shown as ``ABCD-EFGH-JKMN``; any case and any dashes or spaces are accepted.
"""

from __future__ import annotations

import csv
import datetime as dt
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from lianjie.db import insert_ignoring_duplicates, utcnow
from lianjie.errors import Conflict, LianjieError, NotFound, ValidationFailed
from lianjie.identity.models import Profile
from lianjie.identity.service import member_ids, root_of
from lianjie.loyalty.coupons import templates
from lianjie.loyalty.coupons.models import Coupon, CouponIssue, CouponStatus, CouponTemplate, IssueKind, TemplateStatus
from lianjie.loyalty.coupons.schemas import CouponOut, IssueIn, IssueOut, RefusedOut
from lianjie.tenants import audit
from lianjie.tenants.models import Merchant

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 12
CHUNK = 1000
ISSUES: Table = CouponIssue.__table__  # type: ignore[assignment]
COUPONS: Table = Coupon.__table__  # type: ignore[assignment]
TEMPLATES: Table = CouponTemplate.__table__  # type: ignore[assignment]


class OutOfStock(Conflict):
    code = "coupon_out_of_stock"


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalise(code: str) -> str:
    """What a cashier typed or a scanner read, as stored: upper case, no dashes or spaces."""
    return "".join(ch for ch in code.upper() if ch not in "- ")


def shown(code: str) -> str:
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4)) if len(code) == CODE_LENGTH else code


def merchant_zone(session: Session, tenant_id: int) -> ZoneInfo:
    return ZoneInfo(session.scalar(select(Merchant.timezone).where(Merchant.id == tenant_id)) or "Asia/Shanghai")


def validity(template: CouponTemplate, issued_at: dt.datetime,
             zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime | None]:
    """A new coupon's ``[valid_from, valid_until)``.

    A fixed window is copied. ``valid_days`` N counts whole days after the day the coupon becomes
    valid, in the merchant's zone: issued at 2026-11-24 15:00 Shanghai with 7 days, it is valid
    until the end of 1 December (2026-12-02 00:00 Shanghai, stored as 2026-12-01 16:00 UTC); a
    template's ``valid_until`` still bounds it.
    """
    start = max(template.valid_from, issued_at) if template.valid_from else issued_at
    until = template.valid_until
    if template.valid_days is not None:
        local_day = start.astimezone(zone).date() + dt.timedelta(days=template.valid_days + 1)
        end = dt.datetime.combine(local_day, dt.time(), zone).astimezone(dt.UTC)
        until = min(until, end) if until else end
    return start, until


ROOT = (select(func.coalesce(Profile.merged_into_id, Profile.id))
        .where(Profile.tenant_id == bindparam("t"), Profile.id == bindparam("p")).scalar_subquery())
_MEMBERS = member_ids(bindparam("t"), ROOT)  # built once: the till's hot path asks on every call


def customer_ids(session: Session, tenant_id: int, profile_id: int) -> list[int]:
    """Every base profile of the customer ``profile_id`` belongs to, in one round trip (404 if unknown)."""
    ids = list(session.scalars(_MEMBERS, {"t": tenant_id, "p": profile_id}))
    if not ids:
        raise NotFound(f"no profile {profile_id}", code="profile_not_found", field="profile_id")
    return ids


def held_by(session: Session, template_id: int, profile_ids: Sequence[int]) -> int:
    """Coupons of a template a customer holds or used (void ones do not count towards the limit)."""
    return session.scalar(select(func.count()).select_from(Coupon).where(
        Coupon.template_id == template_id, Coupon.profile_id.in_(profile_ids),
        Coupon.status != CouponStatus.VOID.value)) or 0


def lock_for_limit(session: Session, template_id: int) -> None:
    """Hold the template's row until the transaction ends, before counting a customer towards its limit.

    Issuing, claiming a printed code and redeeming an unbound one (which claims it) all count what the
    customer holds and then give them one more; each takes this lock first (``FOR NO KEY UPDATE``, as
    :func:`templates.get` does), so two of them for one customer never both count the same number.
    On SQLite the write transaction already lets one writer in at a time.
    """
    session.execute(select(TEMPLATES.c.id).where(TEMPLATES.c.id == template_id).with_for_update(key_share=True))


def effective_status(coupon: Coupon, now: dt.datetime) -> str:
    if coupon.status == CouponStatus.ISSUED.value and coupon.valid_until is not None and now >= coupon.valid_until:
        return CouponStatus.EXPIRED.value
    return coupon.status


def coupon_out(coupon: Coupon, template_code: str, now: dt.datetime | None = None) -> CouponOut:
    return CouponOut(code=shown(coupon.code), template_code=template_code,
                     status=effective_status(coupon, now or utcnow()), profile_id=coupon.profile_id,
                     valid_from=coupon.valid_from, valid_until=coupon.valid_until, order_no=coupon.order_no,
                     discount_fen=coupon.discount_fen, redeemed_at=coupon.redeemed_at, issued_at=coupon.issued_at)


@dataclass(slots=True)
class Issued:
    issue: CouponIssue
    template: CouponTemplate
    replayed: bool

    def out(self, session: Session) -> IssueOut:
        coupons = session.scalars(select(Coupon).where(Coupon.issue_id == self.issue.id).order_by(Coupon.id)).all()
        return IssueOut(issue_id=self.issue.id, template_code=self.template.code, kind=self.issue.kind,
                        replayed=self.replayed, coupons=[coupon_out(c, self.template.code) for c in coupons],
                        refused=[RefusedOut.model_validate(r) for r in self.issue.refused])


def _check_issuable(template: CouponTemplate, now: dt.datetime) -> None:
    if template.status != TemplateStatus.ACTIVE.value:
        raise Conflict(f"coupon template {template.code!r} is {template.status}; resume it to issue",
                       code="coupon_template_paused", field="template_code")
    if template.valid_until is not None and template.valid_until <= now:
        raise Conflict(f"coupon template {template.code!r} ended on {template.valid_until:%Y-%m-%d}",
                       code="coupon_template_ended", field="template_code")


def _claim_key(session: Session, tenant_id: int, template: CouponTemplate, data: IssueIn,
               now: dt.datetime) -> tuple[int, bool]:
    """Insert the issue under its key; returns (issue id, whether the key was used before)."""
    request = data.model_dump(mode="json", exclude_none=True, exclude={"idempotency_key"})
    request["template_code"] = template.code
    kind = IssueKind.CODES if data.count is not None else IssueKind.PROFILES
    conn = session.connection()
    row = {"tenant_id": tenant_id, "idempotency_key": data.idempotency_key, "template_id": template.id,
           "kind": kind.value, "request": request, "refused": [], "count": 0, "created_at": now}
    new_id = conn.execute(insert_ignoring_duplicates(conn, ISSUES, ("tenant_id", "idempotency_key"), returning="id"),
                          row).scalar()
    if new_id is not None:
        return int(new_id), False
    stored = session.execute(select(ISSUES.c.id, ISSUES.c.request).where(
        ISSUES.c.tenant_id == tenant_id, ISSUES.c.idempotency_key == data.idempotency_key)).one()
    if stored.request != request:
        raise Conflict(f"idempotency key {data.idempotency_key!r} was already used for another issue "
                       f"({stored.request})", code="idempotency_key_reused", field="idempotency_key")
    return int(stored.id), True


def _check_profiles(session: Session, tenant_id: int, ids: Sequence[int]) -> None:
    found = set(session.scalars(select(Profile.id).where(Profile.tenant_id == tenant_id, Profile.id.in_(ids))))
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationFailed(f"no profile {', '.join(map(str, missing[:20]))}", code="profile_not_found",
                               field="profile_ids" if len(ids) > 1 else "profile_id")


def _draw_stock(session: Session, template: CouponTemplate, n: int) -> bool:
    """Take ``n`` coupons from the template's stock, or nothing if fewer are left."""
    drawn = session.connection().execute(
        update(TEMPLATES).where(TEMPLATES.c.id == template.id,
                                (TEMPLATES.c.stock.is_(None)) | (TEMPLATES.c.issued + n <= TEMPLATES.c.stock))
        .values(issued=TEMPLATES.c.issued + n))
    return bool(drawn.rowcount)


def _insert(session: Session, tenant_id: int, template: CouponTemplate, issue_id: int, owners: Sequence[int | None],
            now: dt.datetime, zone: ZoneInfo, on_progress: Callable[[int], None] | None = None) -> None:
    valid_from, valid_until = validity(template, now, zone)
    codes: set[str] = set()
    conn = session.connection()
    for start in range(0, len(owners), CHUNK):
        part = owners[start:start + CHUNK]
        rows = []
        for owner in part:
            code = new_code()
            while code in codes:
                code = new_code()
            codes.add(code)
            rows.append({"tenant_id": tenant_id, "template_id": template.id, "issue_id": issue_id, "code": code,
                         "profile_id": owner, "status": CouponStatus.ISSUED.value, "valid_from": valid_from,
                         "valid_until": valid_until, "order_no": None, "discount_fen": None, "redeemed_at": None,
                         "void_reason": None, "issued_at": now, "updated_at": now})
        conn.execute(insert(COUPONS), rows)
        if on_progress is not None:
            on_progress(len(part))


def issue(session: Session, tenant_id: int, template_code: str, data: IssueIn, *, now: dt.datetime | None = None,
          on_progress: Callable[[int], None] | None = None) -> Issued:
    """Issue coupons of a template as ``data`` asks; a repeat of the key returns the first result."""
    now = now or utcnow()
    session.flush()
    targets = [data.profile_id] if data.profile_id is not None else list(data.profile_ids or [])
    if targets:
        _check_profiles(session, tenant_id, targets)
    template = templates.get(session, tenant_id, template_code, lock=True)  # limits and stock, one at a time
    issue_id, replayed = _claim_key(session, tenant_id, template, data, now)
    if replayed:
        return Issued(session.get_one(CouponIssue, issue_id), template, True)
    try:
        _check_issuable(template, now)
        owners: list[int | None] = [None] * (data.count or 0)
        refused: list[dict[str, Any]] = []
        if targets:
            owners, refused = _within_limit(session, tenant_id, template, targets)
        if data.profile_id is not None and not owners:  # one customer, at the limit: refused outright
            raise Conflict(refused[0]["message"], code=refused[0]["code"], field="profile_id")
        if owners and not _draw_stock(session, template, len(owners)):
            left = (template.stock or 0) - template.issued
            raise OutOfStock(f"coupon template {template.code!r} has {left} coupons left, {len(owners)} asked",
                             field="template_code", details={"left": left, "asked": len(owners)})
    except LianjieError:
        # Give the key back, so a refused request changes nothing even if the caller's transaction goes
        # on, and a corrected retry (after a resume, a restock) may use the same key.
        session.connection().execute(ISSUES.delete().where(ISSUES.c.id == issue_id))
        raise
    _insert(session, tenant_id, template, issue_id, owners, now, merchant_zone(session, tenant_id), on_progress)
    session.connection().execute(update(ISSUES).where(ISSUES.c.id == issue_id)
                                 .values(refused=refused, count=len(owners)))
    if data.profile_id is None:  # a batch is the operator's act; one customer's coupon is the till's or a journey's
        audit.record(session, tenant_id, "coupon.issue", f"coupon_issue:{issue_id}",
                     after={"template_code": template.code, "issued": len(owners), "refused": len(refused),
                            "to_customers": bool(targets)})
    session.expire(template)
    return Issued(session.get_one(CouponIssue, issue_id, populate_existing=True), template, False)


def _within_limit(session: Session, tenant_id: int, template: CouponTemplate,
                  targets: Sequence[int]) -> tuple[list[int | None], list[dict[str, Any]]]:
    """Which targets may get one more coupon; two profiles of one customer in a list count together."""
    owners: list[int | None] = []
    refused: list[dict[str, Any]] = []
    given: dict[int, int] = {}  # per customer root, in this request
    for profile_id in targets:
        if template.per_customer_limit is None:
            owners.append(profile_id)
            continue
        ids = customer_ids(session, tenant_id, profile_id)
        root = root_of(session, tenant_id, profile_id)
        held = held_by(session, template.id, ids) + given.get(root, 0)
        if held >= template.per_customer_limit:
            refused.append({"profile_id": profile_id, "code": "coupon_limit_reached",
                            "message": f"customer {root} already has {held} of {template.code!r}, the limit is "
                                       f"{template.per_customer_limit}"})
            continue
        given[root] = given.get(root, 0) + 1
        owners.append(profile_id)
    return owners, refused


def claim(session: Session, tenant_id: int, code: str, profile_id: int, now: dt.datetime | None = None) -> Coupon:
    """Bind an unbound (printed) code to a customer; claiming one's own coupon again is a no-op."""
    now = now or utcnow()
    coupon = find(session, tenant_id, code)
    ids = customer_ids(session, tenant_id, profile_id)
    if coupon.profile_id is not None:
        if coupon.profile_id in ids:
            return coupon
        raise Conflict("this coupon was claimed by another customer", code="coupon_already_claimed", field="code")
    if coupon.status == CouponStatus.VOID.value:
        raise Conflict("this coupon was voided", code="coupon_void", field="code")
    lock_for_limit(session, coupon.template_id)
    template = session.get_one(CouponTemplate, coupon.template_id)
    if template.per_customer_limit is not None and held_by(session, template.id, ids) >= template.per_customer_limit:
        raise Conflict(f"the customer already has {template.per_customer_limit} of {template.code!r}",
                       code="coupon_limit_reached", field="profile_id")
    bound = session.connection().execute(
        update(COUPONS).where(COUPONS.c.id == coupon.id, COUPONS.c.profile_id.is_(None))
        .values(profile_id=profile_id, updated_at=now))
    session.refresh(coupon)
    if not bound.rowcount and coupon.profile_id not in ids:
        raise Conflict("this coupon was claimed by another customer", code="coupon_already_claimed", field="code")
    return coupon


def find(session: Session, tenant_id: int, code: str, *, missing_ok: bool = False) -> Coupon:
    coupon = session.scalar(select(Coupon).where(Coupon.tenant_id == tenant_id, Coupon.code == normalise(code)))
    if coupon is None and not missing_ok:
        raise NotFound(f"no coupon with code {code!r}", code="coupon_not_found", field="code")
    return coupon  # type: ignore[return-value]


def of_customer(session: Session, tenant_id: int, profile_id: int, *, status: str | None = None,
                template_code: str | None = None, limit: int = 100, offset: int = 0) -> tuple[list[CouponOut], int]:
    """A customer's coupons (every profile merged into it), newest first; ``status`` as shown (expired
    included)."""
    now = utcnow()
    query = (select(Coupon, CouponTemplate.code).join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
             .where(Coupon.tenant_id == tenant_id, Coupon.profile_id.in_(customer_ids(session, tenant_id, profile_id))))
    if template_code is not None:
        query = query.where(CouponTemplate.code == template_code)
    if status == CouponStatus.EXPIRED.value:
        query = query.where((Coupon.status == status) | ((Coupon.status == CouponStatus.ISSUED.value)
                                                          & (Coupon.valid_until <= now)))
    elif status == CouponStatus.ISSUED.value:
        query = query.where(Coupon.status == status, Coupon.valid_until.is_(None) | (Coupon.valid_until > now))
    elif status is not None:
        query = query.where(Coupon.status == status)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = session.execute(query.order_by(Coupon.id.desc()).limit(limit).offset(offset)).all()
    return [coupon_out(c, t, now) for c, t in rows], total


def codes_csv_rows(session: Session, tenant_id: int, issue_id: int) -> tuple[CouponIssue, list[tuple[str, str]]]:
    """An issue's codes (as printed, and as stored for a QR payload) for a print shop's CSV."""
    found = session.scalar(select(CouponIssue).where(CouponIssue.tenant_id == tenant_id, CouponIssue.id == issue_id))
    if found is None:
        raise NotFound(f"no coupon issue {issue_id}", code="coupon_issue_not_found", field="issue_id")
    codes = session.scalars(select(Coupon.code).where(Coupon.issue_id == issue_id).order_by(Coupon.id))
    return found, [(shown(c), c) for c in codes]


def write_codes_csv(rows: Iterable[tuple[str, str]], out: TextIO) -> None:
    """A print shop's CSV: the printed code and the QR payload (the stored code), one coupon a row."""
    writer = csv.writer(out)
    writer.writerow(["code", "qr_payload"])
    writer.writerows(rows)
