"""Paid membership's section of the PIPL export (identity/export.py): each membership of the
customer's profiles with its terms (periods, fees in fen), reward accruals, certificates and the
actions that changed it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.crypto import PiiCipher
from lianjie.identity.export import register_section, row, rows
from lianjie.loyalty.membership.models import (
    Membership,
    MembershipAction,
    MembershipPeriod,
    MembershipPlan,
    RewardAccrual,
    RewardCertificate,
)


def memberships(session: Session, cipher: PiiCipher, tenant_id: int,
                profile_ids: Sequence[int]) -> list[dict[str, Any]]:
    """A membership belongs here when one of the profiles holds it or bought one of its terms (a merge
    may have extended another profile's membership with this one's days)."""
    bought = select(MembershipPeriod.membership_id).where(MembershipPeriod.tenant_id == tenant_id,
                                                          MembershipPeriod.profile_id.in_(profile_ids))
    found = session.execute(select(Membership, MembershipPlan.code).join(MembershipPlan,
                                                                         MembershipPlan.id == Membership.plan_id)
                            .where(Membership.tenant_id == tenant_id,
                                   Membership.profile_id.in_(profile_ids) | Membership.id.in_(bought))
                            .order_by(Membership.id)).all()
    ids = [m.id for m, _ in found]
    plans = {plan_id: plan_code for plan_id, plan_code in session.execute(
        select(MembershipPlan.id, MembershipPlan.code).where(MembershipPlan.tenant_id == tenant_id))}

    def by_membership(model: Any) -> dict[int, list[Any]]:
        grouped: dict[int, list[Any]] = {}
        for item in session.scalars(select(model).where(model.tenant_id == tenant_id, model.membership_id.in_(ids))
                                    .order_by(model.id)):
            grouped.setdefault(item.membership_id, []).append(item)
        return grouped

    periods, certificates, actions = (by_membership(m) for m in (MembershipPeriod, RewardCertificate,
                                                                 MembershipAction))
    period_ids = [p.id for group in periods.values() for p in group]
    accruals: dict[int, list[RewardAccrual]] = {}
    for accrual in session.scalars(select(RewardAccrual).where(RewardAccrual.tenant_id == tenant_id,
                                                               RewardAccrual.period_id.in_(period_ids))
                                   .order_by(RewardAccrual.id)):
        accruals.setdefault(accrual.period_id, []).append(accrual)
    return [row(m, exclude={"tenant_id"}) | {
        "plan_code": code,
        "periods": [row(p, exclude={"tenant_id", "membership_id"})
                    | {"plan_code": plans.get(p.plan_id),
                       "reward_accruals": rows(accruals.get(p.id, []), exclude={"tenant_id", "period_id"})}
                    for p in periods.get(m.id, [])],
        "certificates": rows(certificates.get(m.id, []), exclude={"tenant_id", "membership_id"}),
        "actions": rows(actions.get(m.id, []), exclude={"tenant_id", "membership_id"}),
    } for m, code in found]


def install() -> None:
    register_section("memberships", ["memberships", "membership_periods", "membership_reward_accruals",
                                     "membership_certificates", "membership_actions"], memberships)
