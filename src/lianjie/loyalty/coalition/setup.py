"""Coalitions and their members: who runs a coalition, who belongs to it and on what terms, and who
may call what.

The auth story: a coalition is *operated* by one merchant (``operator_tenant_id``); that merchant's
admin keys with ``coalition:write`` create it, set members' terms and close periods, and with
``coalition:read`` read full statements. A *member* merchant's keys with ``coalition:write`` link
cards and earn, redeem and buy prepaid blocks at its own tills, and with ``coalition:read`` see its
own membership and its own statement lines. Any other merchant gets 404, as if the coalition did not
exist, so codes are not probed through the API.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.db import utcnow
from lianjie.errors import Conflict, Forbidden, NotFound, ValidationFailed
from lianjie.loyalty.coalition.models import Coalition, CoalitionMember, Funding, Role
from lianjie.loyalty.coalition.schemas import CoalitionIn, CoalitionOut, MemberIn, MemberOut
from lianjie.tenants import audit
from lianjie.tenants.models import Merchant
from lianjie.tenants.service import get_merchant

MILLI = 1000


@dataclass(frozen=True, slots=True)
class Access:
    """A caller's standing in a coalition."""

    coalition: Coalition
    tenant_id: int
    operator: bool
    member: CoalitionMember | None


def create(session: Session, operator_tenant_id: int, data: CoalitionIn) -> tuple[Coalition, bool]:
    """A new coalition run by the caller's merchant; the same request again returns it (200), other
    values under a taken code are a 409 naming the fields."""
    existing = session.scalar(select(Coalition).where(Coalition.code == data.code))
    wanted = {"name": data.name, "operator_tenant_id": operator_tenant_id, "timezone": data.timezone,
              "currency": data.currency, "expiry_days": data.expiry_days}
    if existing is not None:
        differing = sorted(k for k, v in wanted.items() if getattr(existing, k) != v)
        if existing.operator_tenant_id != operator_tenant_id:
            raise Conflict(f"coalition code {data.code!r} is taken", code="coalition_exists", field="code")
        if differing:
            raise Conflict(f"coalition {data.code!r} exists with other values: {', '.join(differing)}",
                           code="coalition_exists", field="code", details={"differing": differing})
        return existing, False
    coalition = Coalition(code=data.code, **wanted)
    session.add(coalition)
    session.flush()
    audit.record(session, operator_tenant_id, "coalition.create", f"coalition:{coalition.code}",
                 after={k: v for k, v in wanted.items() if k != "operator_tenant_id"})
    return coalition, True


def access(session: Session, code: str, tenant_id: int, *, operator: bool = False) -> Access:
    """The caller's standing; 404 for a merchant that is neither operator nor member (nor the operator,
    when ``operator`` is asked for and the caller is only a member: 403, it knows the coalition)."""
    coalition = session.scalar(select(Coalition).where(Coalition.code == code))
    member = None if coalition is None else session.scalar(select(CoalitionMember).where(
        CoalitionMember.coalition_id == coalition.id, CoalitionMember.tenant_id == tenant_id))
    if coalition is None or (member is None and coalition.operator_tenant_id != tenant_id):
        raise NotFound(f"no coalition {code!r}", code="coalition_not_found")
    is_operator = coalition.operator_tenant_id == tenant_id
    if operator and not is_operator:
        raise Forbidden(f"only the operator of coalition {code!r} may do this", code="not_operator")
    return Access(coalition, tenant_id, is_operator, member)


def active_member(acc: Access, now: dt.datetime, *, issuing: bool | None) -> CoalitionMember:
    """The caller as a member that may award (``issuing``) or take points (or either: None) now."""
    member = acc.member
    if member is None:
        raise Conflict(f"this merchant is not a member of coalition {acc.coalition.code!r}", code="not_member")
    if member.left_at is not None and member.left_at <= now:
        raise Conflict(f"this merchant left coalition {acc.coalition.code!r} on {member.left_at.isoformat()}",
                       code="member_left")
    if issuing is True and member.role == Role.REDEEMER.value:
        raise Conflict("this member only redeems points (role 'redeemer')", code="role_forbids", field="role")
    if issuing is False and member.role == Role.ISSUER.value:
        raise Conflict("this member only awards points (role 'issuer')", code="role_forbids", field="role")
    return member


def milli_fen(price: Decimal) -> int:
    return int(price * MILLI)


def put_member(session: Session, acc: Access, merchant_ref: str, data: MemberIn) -> tuple[CoalitionMember, bool]:
    """Add a merchant or change its terms (the operator's act, per the partner contract).

    New terms apply to entries written from now on: each entry keeps the price it was written at,
    so a statement never changes with the terms. A prepaid member with points left in its block
    cannot switch to postpaid (the block was paid for at its price): 409.
    """
    merchant = get_merchant(session, merchant_ref)
    member = session.scalar(select(CoalitionMember).where(CoalitionMember.coalition_id == acc.coalition.id,
                                                          CoalitionMember.tenant_id == merchant.id)
                            .with_for_update())
    values = {"role": data.role.value, "issue_price_milli_fen": milli_fen(data.issue_price_fen_per_point),
              "redemption_value_milli_fen": milli_fen(data.redemption_value_fen_per_point),
              "funding": data.funding.value, "left_at": data.left_at}
    target = f"coalition:{acc.coalition.code}:member:{merchant.slug}"
    if member is None:
        member = CoalitionMember(coalition_id=acc.coalition.id, tenant_id=merchant.id, prepaid_balance=0,
                                 joined_at=utcnow(), **values)
        session.add(member)
        session.flush()
        audit.record(session, acc.tenant_id, "coalition_member.add", target, after=member_out(member, merchant.slug))
        return member, True
    if member.funding == Funding.PREPAID.value and data.funding == Funding.POSTPAID and member.prepaid_balance:
        raise Conflict(f"{merchant.slug} still has {member.prepaid_balance} prepaid points; use them up before "
                       "switching to postpaid", code="prepaid_block_left", field="funding")
    if data.left_at is not None and member.left_at is not None and data.left_at != member.left_at:
        raise ValidationFailed("the membership already ended; its end date stays", field="left_at")
    before = member_out(member, merchant.slug)
    for name, value in values.items():
        setattr(member, name, value)
    session.flush()
    after = member_out(member, merchant.slug)
    if after != before:
        audit.record(session, acc.tenant_id, "coalition_member.update", target, before=before, after=after)
    return member, False


def member_out(member: CoalitionMember, slug: str) -> MemberOut:
    return MemberOut(merchant=slug, role=member.role,
                     issue_price_fen_per_point=Decimal(member.issue_price_milli_fen) / MILLI,
                     redemption_value_fen_per_point=Decimal(member.redemption_value_milli_fen) / MILLI,
                     funding=member.funding, prepaid_balance=member.prepaid_balance, joined_at=member.joined_at,
                     left_at=member.left_at)


def slugs(session: Session, tenant_ids: set[int]) -> dict[int, str]:
    return dict(session.execute(select(Merchant.id, Merchant.slug).where(Merchant.id.in_(tenant_ids))).all())


def describe(session: Session, acc: Access) -> CoalitionOut:
    """The coalition; the operator sees every member's terms, a member only its own."""
    coalition = acc.coalition
    query = select(CoalitionMember).where(CoalitionMember.coalition_id == coalition.id)
    if not acc.operator:
        query = query.where(CoalitionMember.tenant_id == acc.tenant_id)
    members = session.scalars(query.order_by(CoalitionMember.id)).all()
    names = slugs(session, {m.tenant_id for m in members} | {coalition.operator_tenant_id})
    return CoalitionOut(code=coalition.code, name=coalition.name, operator=names[coalition.operator_tenant_id],
                        currency=coalition.currency, timezone=coalition.timezone, expiry_days=coalition.expiry_days,
                        closed_through=coalition.closed_through,
                        members=[member_out(m, names[m.tenant_id]) for m in members])
