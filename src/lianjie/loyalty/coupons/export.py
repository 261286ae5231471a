"""Coupons' section of the PIPL export (identity/export.py): the customer's coupons (code, template,
status, discount in fen) and every redemption of a coupon they held or that was redeemed for them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.crypto import PiiCipher
from lianjie.identity.export import register_section, row, rows
from lianjie.loyalty.coupons.issuing import shown
from lianjie.loyalty.coupons.models import Coupon, CouponRedemption, CouponTemplate


def coupons(session: Session, cipher: PiiCipher, tenant_id: int, profile_ids: Sequence[int]) -> dict[str, Any]:
    held = session.execute(select(Coupon, CouponTemplate.code)
                           .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
                           .where(Coupon.tenant_id == tenant_id, Coupon.profile_id.in_(profile_ids))
                           .order_by(Coupon.id)).all()
    coupon_ids = [c.id for c, _ in held]
    redemptions = session.scalars(select(CouponRedemption).where(
        CouponRedemption.tenant_id == tenant_id,
        CouponRedemption.profile_id.in_(profile_ids) | CouponRedemption.coupon_id.in_(coupon_ids))
        .order_by(CouponRedemption.id)).all()
    # Codes as printed and as the customer types them (3EHM-E9E8-6X8K), not as stored for matching.
    return {"coupons": [row(c, exclude={"tenant_id"}) | {"code": shown(c.code), "template_code": code}
                        for c, code in held],
            "redemptions": rows(redemptions, exclude={"tenant_id"})}


def install() -> None:
    register_section("coupons", ["coupons", "coupon_redemptions"], coupons)
