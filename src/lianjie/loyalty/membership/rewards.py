"""The paid membership reward (e.g. 2 % of eligible spend, at most ¥1,250 a year), as Costco's Executive
membership pays it: accrued per order, paid out as a reward certificate when the membership renews.

Eligible spend is what the customer paid (after discounts and coupons) for everything but membership
fees, on orders of any of the customer's profiles placed while a term was running (the order's local
date). Each order's eligible spend is one accrual on that term; each refund of it a negative accrual of
the refunded non-fee lines, so the year's spend is always net of refunds. The rate and cap apply to the
year's total (see :func:`periods.year_reward`), so no fen is lost to rounding per order.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.commerce.events import LineFacts
from lianjie.db import utcnow
from lianjie.errors import Conflict, NotFound
from lianjie.loyalty.membership import periods
from lianjie.loyalty.membership.models import (
    CertificateStatus,
    MembershipPeriod,
    RewardAccrual,
    RewardCertificate,
)
from lianjie.loyalty.membership.terms import local_date


def _eligible(lines: Iterable[LineFacts], plan_skus: set[str]) -> int:
    return sum(line.paid_fen for line in lines if line.sku not in plan_skus)


def accrue(session: Session, tenant_id: int, profile_id: int, order_no: str, lines: Iterable[LineFacts],
           plan_skus: set[str], ordered_at: dt.datetime, zone: str) -> RewardAccrual | None:
    """Note an order's eligible spend on the customer's term running that day (once per order)."""
    eligible = _eligible(lines, plan_skus)
    if eligible <= 0:
        return None
    key = f"order:{order_no}"
    if session.scalar(select(RewardAccrual.id).where(RewardAccrual.tenant_id == tenant_id,
                                                     RewardAccrual.source_key == key)) is not None:
        return None
    ids = periods.customer_ids(session, tenant_id, profile_id)
    term = periods.covering(session, tenant_id, ids, local_date(ordered_at, zone))
    if term is None:
        return None
    row = RewardAccrual(tenant_id=tenant_id, period_id=term.id, profile_id=profile_id, order_no=order_no,
                        source_key=key, eligible_fen=eligible)
    session.add(row)
    session.flush()
    return row


def reverse(session: Session, tenant_id: int, order_no: str, refund_no: str, lines: Iterable[LineFacts],
            plan_skus: set[str], refunded_fen: int, order_paid_fen: int) -> RewardAccrual | None:
    """Take a refund's eligible spend off the term the order accrued on (once per refund number).

    Commerce sends the refunded lines, and the refunded non-fee lines count; a refund known only by its
    amount takes the order's eligible spend in proportion (rounded down).
    """
    key = f"refund:{refund_no}"
    rows = session.scalars(select(RewardAccrual).where(RewardAccrual.tenant_id == tenant_id,
                                                       RewardAccrual.order_no == order_no)).all()
    accrued = next((r for r in rows if r.source_key == f"order:{order_no}"), None)
    if accrued is None or any(r.source_key == key for r in rows):
        return None
    lines = list(lines)
    already = -sum(r.eligible_fen for r in rows if r is not accrued)
    if lines:
        amount = _eligible(lines, plan_skus)
    else:
        amount = accrued.eligible_fen * refunded_fen // order_paid_fen if order_paid_fen else 0
    amount = min(amount, accrued.eligible_fen - already)
    if amount <= 0:
        return None
    row = RewardAccrual(tenant_id=tenant_id, period_id=accrued.period_id, profile_id=accrued.profile_id,
                        order_no=order_no, source_key=key, eligible_fen=-amount)
    session.add(row)
    session.flush()
    _settle_paid_out(session, tenant_id, accrued.period_id, refund_no)
    return row


def _settle_paid_out(session: Session, tenant_id: int, period_id: int, refund_no: str) -> None:
    """A refund after the year's certificate was issued: the certificate shrinks to the year's new reward
    (void at 0), or, if it was already used, the difference is recorded as owed. Example: a 2,600 fen
    certificate, then a refund that takes the year's reward to 2,200: an unused certificate is worth
    2,200; a used one leaves 400 fen owed."""
    year_end = session.get(MembershipPeriod, period_id)
    while year_end is not None and year_end.status == "upgraded":
        year_end = session.scalar(select(MembershipPeriod).where(MembershipPeriod.previous_id == year_end.id,
                                                                 MembershipPeriod.kind == "upgrade"))
    certificate = session.scalar(select(RewardCertificate).where(
        RewardCertificate.tenant_id == tenant_id, RewardCertificate.period_id == (year_end.id if year_end else -1)))
    if year_end is None or certificate is None or certificate.status == CertificateStatus.VOID.value:
        return
    now_worth = periods.year_reward(session, year_end)
    if certificate.status == CertificateStatus.ISSUED.value:
        if now_worth < certificate.amount_fen:
            adjusted = {"was_fen": certificate.amount_fen, "now_fen": now_worth}
            if now_worth > 0:
                certificate.amount_fen = now_worth
            else:
                certificate.status = CertificateStatus.VOID.value
                certificate.void_reason = f"refund {refund_no} left no reward"
            periods.record(session, tenant_id, "reward_adjusted", membership_id=certificate.membership_id,
                           period_id=year_end.id, outcome={"certificate": certificate.code, **adjusted})
    else:
        owed = min(certificate.amount_fen, max(certificate.clawback_owed_fen, certificate.amount_fen - now_worth))
        if owed != certificate.clawback_owed_fen:
            periods.record(session, tenant_id, "reward_adjusted", membership_id=certificate.membership_id,
                           period_id=year_end.id, outcome={"certificate": certificate.code, "clawback_owed_fen":
                                                           owed, "was_owed_fen": certificate.clawback_owed_fen})
            certificate.clawback_owed_fen = owed
    session.flush()


def issue_certificate(session: Session, tenant_id: int, year_end: MembershipPeriod, renewal: MembershipPeriod,
                      on: dt.date) -> RewardCertificate | None:
    """Pay a membership year's reward out as a certificate when it is renewed (nothing if it is 0)."""
    existing = session.scalar(select(RewardCertificate).where(RewardCertificate.tenant_id == tenant_id,
                                                              RewardCertificate.period_id == year_end.id))
    if existing is not None:
        return existing
    amount = periods.year_reward(session, year_end)
    if amount <= 0:
        return None
    certificate = RewardCertificate(tenant_id=tenant_id, code="RC" + secrets.token_hex(8).upper(),
                                    membership_id=year_end.membership_id, period_id=year_end.id,
                                    issued_in_id=renewal.id, profile_id=year_end.profile_id, amount_fen=amount,
                                    status=CertificateStatus.ISSUED.value, issued_on=on)
    session.add(certificate)
    session.flush()
    return certificate


def certificates(session: Session, tenant_id: int, profile_id: int) -> list[RewardCertificate]:
    ids = periods.customer_ids(session, tenant_id, profile_id)
    return list(session.scalars(select(RewardCertificate).where(RewardCertificate.tenant_id == tenant_id,
                                                                RewardCertificate.profile_id.in_(ids))
                                .order_by(RewardCertificate.id.desc())))


def redeem(session: Session, tenant_id: int, code: str, order_no: str) -> tuple[RewardCertificate, bool]:
    """Use a certificate towards an order; the same order again is a replay (False), another a 409."""
    certificate = session.scalar(select(RewardCertificate).where(RewardCertificate.tenant_id == tenant_id,
                                                                 RewardCertificate.code == code).with_for_update())
    if certificate is None:
        raise NotFound(f"no reward certificate {code!r}", code="certificate_not_found", field="code")
    if certificate.status == CertificateStatus.REDEEMED.value:
        if certificate.redeemed_order_no == order_no:
            return certificate, False
        raise Conflict(f"certificate {code!r} was already redeemed on order {certificate.redeemed_order_no!r}",
                       code="certificate_redeemed", field="code")
    if certificate.status == CertificateStatus.VOID.value:
        raise Conflict(f"certificate {code!r} is void ({certificate.void_reason})", code="certificate_void",
                       field="code")
    certificate.status = CertificateStatus.REDEEMED.value
    certificate.redeemed_at = utcnow()
    certificate.redeemed_order_no = order_no
    session.flush()
    return certificate, True


def claw_back(session: Session, tenant_id: int, refunded: MembershipPeriod) -> dict[str, int]:
    """What refunding a term takes back of the reward, exactly: the year's accrued reward is forfeited,
    and the certificate its renewal paid out is voided, or, if already used, recorded as owed."""
    outcome = {"reward_forfeited_fen": periods.year_reward(session, refunded), "certificate_voided_fen": 0,
               "clawback_owed_fen": 0}
    paid_out = session.scalars(select(RewardCertificate).where(RewardCertificate.tenant_id == tenant_id,
                                                               RewardCertificate.issued_in_id == refunded.id)).all()
    for certificate in paid_out:
        if certificate.status == CertificateStatus.ISSUED.value:
            certificate.status = CertificateStatus.VOID.value
            certificate.void_reason = f"membership term {refunded.id} refunded"
            outcome["certificate_voided_fen"] += certificate.amount_fen
        elif certificate.status == CertificateStatus.REDEEMED.value:
            certificate.clawback_owed_fen = certificate.amount_fen
            outcome["clawback_owed_fen"] += certificate.amount_fen
    session.flush()
    return outcome
