"""Membership plans: created by code, idempotently; the catalogue product that sells a plan must exist.

Creating a plan does not create its product: the catalogue belongs to commerce (and to the merchant's
ERP feed, which would overwrite a product made here). The plan names the SKU, which must be in the
catalogue, and an order line with that SKU buys the plan. The fee actually recognised is what the
order line was paid (a promotion may discount it); ``fee_fen`` is the list fee used for upgrades and
automatic renewals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.commerce.models import Product
from lianjie.db import driver_execute, forget_cached, transaction_cache
from lianjie.errors import Conflict, NotFound, ValidationFailed
from lianjie.loyalty.membership.models import MembershipPlan
from lianjie.loyalty.membership.schemas import PlanIn, PlanOut, PlanUpdate
from lianjie.tenants import audit
from lianjie.tenants.models import Merchant


def zone_of(session: Session, tenant_id: int) -> str:
    merchant = session.get(Merchant, tenant_id)
    if merchant is None:
        raise NotFound(f"no merchant {tenant_id}", code="merchant_not_found")
    return merchant.timezone


def _stored(values: dict[str, Any]) -> dict[str, Any]:
    values = dict(values)
    for key in ("refund_after", "merge_policy"):
        if key in values and values[key] is not None:
            values[key] = getattr(values[key], "value", values[key])
    if values.get("points_multiplier") is not None:
        values["points_multiplier"] = format(values["points_multiplier"].normalize(), "f")  # "10", never "1E+1"
    return values


def _check_sku(session: Session, tenant_id: int, sku: str, plan_id: int | None = None) -> None:
    if session.scalar(select(Product.id).where(Product.tenant_id == tenant_id, Product.sku == sku)) is None:
        raise ValidationFailed(f"no product with SKU {sku!r} in the catalogue: add the product that sells the plan "
                               "first (PUT it through /api/v1/products)", field="sku", code="unknown_sku")
    other = session.scalar(select(MembershipPlan.code).where(MembershipPlan.tenant_id == tenant_id,
                                                             MembershipPlan.sku == sku, MembershipPlan.id != plan_id))
    if other is not None:
        raise Conflict(f"SKU {sku!r} already sells plan {other!r}", field="sku", code="sku_taken")


def get_plan(session: Session, tenant_id: int, code: str) -> MembershipPlan:
    plan = session.scalar(select(MembershipPlan).where(MembershipPlan.tenant_id == tenant_id,
                                                       MembershipPlan.code == code))
    if plan is None:
        raise NotFound(f"no membership plan {code!r}", code="plan_not_found", field="plan_code")
    return plan


def list_plans(session: Session, tenant_id: int) -> Sequence[MembershipPlan]:
    return session.scalars(select(MembershipPlan).where(MembershipPlan.tenant_id == tenant_id)
                           .order_by(MembershipPlan.rank, MembershipPlan.code)).all()


def plans_by_sku(session: Session, tenant_id: int) -> dict[str, MembershipPlan]:
    return {p.sku: p for p in list_plans(session, tenant_id)}


@dataclass(frozen=True, slots=True)
class Facts:
    """What every order asks of the plans: which SKUs sell one, and whether any multiplies points."""

    skus: frozenset[str]
    multiplies: bool


_FACTS = "lianjie.membership.facts"


def facts(session: Session, tenant_id: int) -> Facts:
    """The merchant's plan facts, read once per transaction.

    Every order (and every imported till row) passes through the membership subscribers and the points
    multiplier; for a merchant without plans one cached lookup is all they cost. The cache lives in the
    session for its current transaction only, and writing a plan drops it (and flushes). Read with
    the driver: ingestion asks once per transaction under the write lock, where the ORM's statement
    building cost several times the query.
    """
    cache = transaction_cache(session, _FACTS)
    if tenant_id not in cache:
        rows = driver_execute(session, "SELECT sku, points_multiplier FROM membership_plans WHERE tenant_id = ?",
                              (tenant_id,)).all()
        cache[tenant_id] = Facts(frozenset(sku for sku, _ in rows), any(m != "1" for _, m in rows))
    known: Facts = cache[tenant_id]
    return known


def _forget(session: Session) -> None:
    forget_cached(session, _FACTS)


def create_plan(session: Session, tenant_id: int, data: PlanIn) -> tuple[MembershipPlan, bool]:
    """Create a plan; the same code with the same values again returns it (created False), other values 409."""
    values = _stored(data.model_dump())
    existing = session.scalar(select(MembershipPlan).where(MembershipPlan.tenant_id == tenant_id,
                                                           MembershipPlan.code == data.code))
    if existing is not None:
        diffs = {k: {"stored": str(getattr(existing, k)), "sent": str(v)} for k, v in values.items()
                 if getattr(existing, k) != v}
        if diffs:
            raise Conflict(f"plan {data.code!r} already exists with other values: {', '.join(diffs)}; "
                           "PATCH it to change it", code="plan_exists", field="code", details=diffs)
        return existing, False
    _check_sku(session, tenant_id, data.sku)
    _forget(session)
    plan = MembershipPlan(tenant_id=tenant_id, status="active", **values)
    session.add(plan)
    session.flush()
    audit.record(session, tenant_id, "membership_plan.create", f"membership_plan:{plan.code}", after=plan_out(plan))
    return plan, True


def update_plan(session: Session, tenant_id: int, code: str, data: PlanUpdate) -> MembershipPlan:
    plan = get_plan(session, tenant_id, code)
    _forget(session)
    before = plan_out(plan)
    changes = _stored(data.model_dump(exclude_unset=True))
    for key, value in changes.items():
        if value is None and key != "refund_full_days":
            raise ValidationFailed(f"{key} cannot be null", field=key)
        setattr(plan, key, value)
    session.flush()
    audit.record(session, tenant_id, "membership_plan.update", f"membership_plan:{plan.code}", before=before,
                 after=plan_out(plan))
    return plan


def plan_out(plan: MembershipPlan) -> PlanOut:
    return PlanOut.model_validate(plan)
