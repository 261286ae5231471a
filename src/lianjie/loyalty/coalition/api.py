"""Coalition API under ``/api/v1/coalitions``: the operator's administration (members, terms, closing
periods, full statements) and the member merchants' tills (linking cards, earning, redeeming, buying
prepaid blocks). Keys need the ``coalition:read|write`` scope; see setup.py for who may call what."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from sqlalchemy.orm import Session

from lianjie.http import REPLAYED, DbSession, RowId
from lianjie.loyalty.coalition import cards, points, settlement, setup
from lianjie.loyalty.coalition.schemas import (
    CardOut,
    CoalitionIn,
    CoalitionOut,
    LinkIn,
    LinkOut,
    MemberIn,
    MemberOut,
    OperationOut,
    PointsIn,
    PurchaseIn,
    StatementOut,
)
from lianjie.tenants.auth import RequireScope
from lianjie.tenants.keys import Caller
from lianjie.tenants.service import get_merchant

router = APIRouter(prefix="/api/v1/coalitions", tags=["coalition"])
Reader = Annotated[Caller, RequireScope("coalition:read")]
Writer = Annotated[Caller, RequireScope("coalition:write")]
Code = Annotated[str, Path(min_length=1, max_length=40)]
CardNo = Annotated[str, Path(min_length=1, max_length=32)]
Period = Annotated[str, Path(min_length=7, max_length=7, description="A month, YYYY-MM, in the coalition's zone.")]


def _created(created: bool, response: Response) -> None:
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK


def _answer(result: points.Result, response: Response) -> OperationOut:
    _created(not result.replayed, response)
    return OperationOut(operation_id=result.operation_id, kind=result.kind, points=result.points,
                        card_no=result.card_no, replayed=result.replayed, booked_at=result.booked_at)


@router.post("", status_code=201, responses=REPLAYED)
def create_coalition(body: CoalitionIn, response: Response, session: DbSession, caller: Writer) -> CoalitionOut:
    """Start a coalition operated by the caller's merchant (idempotent on the code)."""
    coalition, created = setup.create(session, caller.tenant_id, body)
    _created(created, response)
    return setup.describe(session, setup.access(session, coalition.code, caller.tenant_id))


@router.get("/{code}")
def get_coalition(code: Code, session: DbSession, caller: Reader) -> CoalitionOut:
    return setup.describe(session, setup.access(session, code, caller.tenant_id))


@router.put("/{code}/members/{merchant}", status_code=201, responses=REPLAYED)
def put_member(code: Code, merchant: Annotated[str, Path(min_length=1, max_length=40)], body: MemberIn,
               response: Response, session: DbSession, caller: Writer) -> MemberOut:
    """The operator adds a merchant (by slug) or changes its terms; new terms apply to new entries."""
    acc = setup.access(session, code, caller.tenant_id, operator=True)
    member, created = setup.put_member(session, acc, merchant, body)
    _created(created, response)
    return setup.member_out(member, get_merchant(session, member.tenant_id).slug)


@router.post("/{code}/cards", status_code=201, responses=REPLAYED)
def link_card(code: Code, body: LinkIn, response: Response, session: DbSession, caller: Writer) -> LinkOut:
    """Link a customer at the caller's merchant to a coalition card (with the customer's consent)."""
    card_no, profile_id, created = cards.link(session, setup.access(session, code, caller.tenant_id), body)
    _created(created, response)
    return LinkOut(card_no=card_no, profile_id=profile_id, created=created)


@router.get("/{code}/cards/{card_no}")
def get_card(code: Code, card_no: CardNo, session: DbSession, caller: Reader) -> CardOut:
    """A card linked at the caller's merchant: balance and the soonest expiries."""
    return cards.describe(session, setup.access(session, code, caller.tenant_id), card_no)


@router.get("/{code}/profiles/{profile_id}/card")
def get_card_of_profile(code: Code, profile_id: RowId, session: DbSession, caller: Reader) -> CardOut:
    acc = setup.access(session, code, caller.tenant_id)
    return cards.describe(session, acc, cards.card_of_profile(session, acc, profile_id))


@router.post("/{code}/cards/{card_no}/earn", status_code=201, responses=REPLAYED)
def earn(code: Code, card_no: CardNo, body: PointsIn, response: Response, session: DbSession,
         caller: Writer) -> OperationOut:
    """Award points at the caller's merchant (a prepaid member draws them from its block)."""
    return _move(points.earn, code, card_no, body, response, session, caller)


@router.post("/{code}/cards/{card_no}/redeem", status_code=201, responses=REPLAYED)
def redeem(code: Code, card_no: CardNo, body: PointsIn, response: Response, session: DbSession,
           caller: Writer) -> OperationOut:
    """Take points at the caller's till, whichever member issued them."""
    return _move(points.redeem, code, card_no, body, response, session, caller)


def _move(operation: Callable[..., points.Result], code: str, card_no: str, body: PointsIn, response: Response,
          session: Session, caller: Caller) -> OperationOut:
    acc = setup.access(session, code, caller.tenant_id)
    result = operation(session, acc, card_no, body.idempotency_key, body.points, order_no=body.order_no)
    return _answer(result, response)


@router.post("/{code}/purchases", status_code=201, responses=REPLAYED)
def purchase(code: Code, body: PurchaseIn, response: Response, session: DbSession, caller: Writer) -> OperationOut:
    """A prepaid member buys a block of points, billed on the period's statement."""
    acc = setup.access(session, code, caller.tenant_id)
    return _answer(points.purchase(session, acc, body.idempotency_key, body.points), response)


@router.post("/{code}/periods/{period}/close", status_code=201, responses=REPLAYED)
def close_period(code: Code, period: Period, response: Response, session: DbSession,
                 caller: Writer) -> StatementOut:
    """The operator closes a finished month: its statement is stored and never changes; again: 200."""
    acc = setup.access(session, code, caller.tenant_id, operator=True)
    _, created = settlement.close(session, acc.coalition, period, closed_by=f"api key {caller.key_id}")
    _created(created, response)
    return settlement.statement(session, acc, period)


@router.get("/{code}/periods/{period}/statement")
def get_statement(code: Code, period: Period, session: DbSession, caller: Reader) -> StatementOut:
    """A closed month's statement, or a preview of an open one (``status``)."""
    return settlement.statement(session, setup.access(session, code, caller.tenant_id), period)
