"""Paid membership API: plans, a customer's memberships, manual renewal, upgrade, refund, reward
certificates and KPIs. Buying a plan goes through ``POST /api/v1/orders`` (a line with the plan's SKU)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from lianjie.db import utcnow
from lianjie.http import REPLAYED, DbSession, RowId
from lianjie.loyalty.membership import kpis, lifecycle, periods, plans, refunds, rewards, views
from lianjie.loyalty.membership.lifecycle import Written
from lianjie.loyalty.membership.schemas import (
    ActionOut,
    CertificateOut,
    MembershipOut,
    MembershipUpdate,
    MembersKpi,
    PlanIn,
    PlanOut,
    PlanUpdate,
    RedeemIn,
    RefundIn,
    RenewalKpi,
    RenewIn,
    RevenueMonth,
    UpgradeIn,
    UpgradeQuote,
)
from lianjie.loyalty.membership.terms import local_date
from lianjie.tenants.auth import RequireScope
from lianjie.tenants.keys import Caller
from lianjie.validation import ApiDate

router = APIRouter(prefix="/api/v1", tags=["paid membership"])
Reader = Annotated[Caller, RequireScope("loyalty:read")]
Writer = Annotated[Caller, RequireScope("loyalty:write")]
ProfileQuery = Annotated[int, Query(ge=1, le=2**63 - 1, description="Any profile of the customer.")]


def _answer(written: Written, response: Response) -> ActionOut:
    response.status_code = status.HTTP_200_OK if written.replayed else status.HTTP_201_CREATED
    a = written.action
    return ActionOut(action_id=a.id, kind=a.kind, membership_id=a.membership_id, period_id=a.period_id,
                     replayed=written.replayed, outcome=a.outcome)


@router.get("/membership-plans")
def list_plans(session: DbSession, caller: Reader) -> list[PlanOut]:
    return [plans.plan_out(p) for p in plans.list_plans(session, caller.tenant_id)]


@router.post("/membership-plans", status_code=201, responses={200: {"description": "The same plan again."}})
def create_plan(body: PlanIn, response: Response, session: DbSession, caller: Writer) -> PlanOut:
    """A new plan; its SKU must be a catalogue product (the order line that sells the plan)."""
    plan, created = plans.create_plan(session, caller.tenant_id, body)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return plans.plan_out(plan)


@router.get("/membership-plans/{code}")
def get_plan(code: str, session: DbSession, caller: Reader) -> PlanOut:
    return plans.plan_out(plans.get_plan(session, caller.tenant_id, code))


@router.patch("/membership-plans/{code}")
def update_plan(code: str, body: PlanUpdate, session: DbSession, caller: Writer) -> PlanOut:
    """Change a plan for terms sold from now on. ``status: retired`` takes it off sale (an order that still
    sells it is honoured: the customer paid); its members keep renewing on it."""
    return plans.plan_out(plans.update_plan(session, caller.tenant_id, code, body))


@router.get("/memberships")
def customer_memberships(profile_id: ProfileQuery, session: DbSession, caller: Reader) -> list[MembershipOut]:
    """The whole customer's memberships (every profile merged with ``profile_id``), newest first."""
    return views.customer_memberships(session, caller.tenant_id, profile_id, utcnow())


@router.get("/memberships/certificates")
def list_certificates(profile_id: ProfileQuery, session: DbSession, caller: Reader) -> list[CertificateOut]:
    return [CertificateOut.model_validate(c) for c in rewards.certificates(session, caller.tenant_id, profile_id)]


@router.post("/memberships/certificates/{code}/redeem", status_code=201,
             responses={200: {"description": "Already redeemed on this order."}})
def redeem_certificate(code: str, body: RedeemIn, response: Response, session: DbSession,
                       caller: Writer) -> CertificateOut:
    certificate, applied = rewards.redeem(session, caller.tenant_id, code, body.order_no)
    response.status_code = status.HTTP_201_CREATED if applied else status.HTTP_200_OK
    return CertificateOut.model_validate(certificate)


@router.get("/memberships/kpis/members")
def members_kpi(session: DbSession, caller: Reader, at: ApiDate | None = None) -> MembersKpi:
    """Paid members (active or in grace) on a local date, default today."""
    day = at or local_date(utcnow(), plans.zone_of(session, caller.tenant_id))
    return kpis.paid_members(session, caller.tenant_id, day)


@router.get("/memberships/kpis/revenue")
def revenue_kpi(session: DbSession, caller: Reader, from_: Annotated[ApiDate, Query(alias="from")],
                to: ApiDate) -> list[RevenueMonth]:
    """Fee revenue recognised per month, ratably over each term (refunds reverse what is unrecognised)."""
    return kpis.revenue(session, caller.tenant_id, from_, to)


@router.get("/memberships/kpis/renewal-rate")
def renewal_kpi(session: DbSession, caller: Reader, at: ApiDate | None = None,
                months: Annotated[int, Query(ge=1, le=120)] = 12) -> RenewalKpi:
    """Share of terms due in the trailing ``months`` before ``at`` that renewed within grace."""
    day = at or local_date(utcnow(), plans.zone_of(session, caller.tenant_id))
    return kpis.renewal_rate(session, caller.tenant_id, day, months)


@router.get("/memberships/{membership_id}")
def get_membership(membership_id: RowId, session: DbSession, caller: Reader) -> MembershipOut:
    membership = periods.get_membership(session, caller.tenant_id, membership_id)
    return views.membership_out(session, membership, utcnow())


@router.patch("/memberships/{membership_id}")
def update_membership(membership_id: RowId, body: MembershipUpdate, session: DbSession,
                      caller: Writer) -> MembershipOut:
    """Turn automatic renewal on or off."""
    membership = views.set_auto_renew(session, caller.tenant_id, membership_id, body.auto_renew)
    return views.membership_out(session, membership, utcnow())


@router.get("/memberships/{membership_id}/upgrade-quote")
def upgrade_quote(membership_id: RowId, plan_code: str, session: DbSession, caller: Reader) -> UpgradeQuote:
    """What upgrading today costs, for the till to charge before it calls ``…/upgrade``."""
    membership = periods.get_membership(session, caller.tenant_id, membership_id)
    plan = plans.get_plan(session, caller.tenant_id, plan_code)
    day = local_date(utcnow(), plans.zone_of(session, caller.tenant_id))
    fee, total, remaining = lifecycle.quote_upgrade(session, membership, plan, day)
    ends_on = periods.latest(session, membership.id).ends_on
    return UpgradeQuote(plan_code=plan.code, fee_fen=fee, remaining_days=remaining, total_days=total, ends_on=ends_on)


@router.post("/memberships/{membership_id}/renew", status_code=201, responses=REPLAYED)
def renew(membership_id: RowId, body: RenewIn, response: Response, session: DbSession, caller: Writer) -> ActionOut:
    """Renew at the desk (paid at the plan's list fee); the ending year's reward becomes a certificate."""
    return _answer(lifecycle.renew_manually(session, caller.tenant_id, membership_id, body, utcnow()), response)


@router.post("/memberships/{membership_id}/upgrade", status_code=201, responses=REPLAYED)
def upgrade(membership_id: RowId, body: UpgradeIn, response: Response, session: DbSession,
            caller: Writer) -> ActionOut:
    """Move to a higher plan for the rest of the term at the prorated fee (the term end stays)."""
    return _answer(lifecycle.upgrade_manually(session, caller.tenant_id, membership_id, body, utcnow()), response)


@router.post("/memberships/{membership_id}/refund", status_code=201, responses=REPLAYED)
def refund(membership_id: RowId, body: RefundIn, response: Response, session: DbSession,
           caller: Writer) -> ActionOut:
    """Refund the running term by the plan's policy (or ``amount_fen``); the reward is clawed back."""
    return _answer(refunds.refund_manually(session, caller.tenant_id, membership_id, body, utcnow()), response)
