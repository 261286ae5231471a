"""Coalition test helpers: an operator and two partner merchants, customers made through OneID,
and the ledger's invariants checked straight from the tables."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lianjie.loyalty.coalition import cards, setup
from lianjie.loyalty.coalition.models import Coalition, CoalitionEntry, CoalitionLot, CoalitionMember
from lianjie.loyalty.coalition.schemas import CoalitionIn, LinkIn, MemberIn
from lianjie.loyalty.coalition.setup import Access
from lianjie.tenants.models import Merchant
from tests.factories import make_merchant

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    """A moment in Asia/Shanghai (no daylight saving, so a fixed +08:00 is exact)."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


@dataclass
class World:
    operator: Merchant
    a: Merchant
    b: Merchant
    coalition: Coalition

    def acc(self, db: Session, merchant: Merchant) -> Access:
        return setup.access(db, self.coalition.code, merchant.id)


def make_world(db: Session, *, a_terms: tuple[str, str, str] = ("10.5", "8", "postpaid"),
               b_terms: tuple[str, str, str] = ("12", "9.25", "prepaid"), expiry_days: int | None = 30) -> World:
    """Operator 'ccc' runs coalition 'tpoint'; A and B are partners on the given (issue price, redemption
    value, funding) terms, joined on 1 January 2026."""
    operator, a, b = make_merchant(db, "ccc", "联盟运营"), make_merchant(db, "huamei"), make_merchant(db, "yuedong")
    coalition, _ = setup.create(db, operator.id, CoalitionIn(code="tpoint", name="T积分", expiry_days=expiry_days))
    op = setup.access(db, "tpoint", operator.id)
    for merchant, (issue, redeem, funding) in ((a, a_terms), (b, b_terms)):
        member, _ = setup.put_member(db, op, merchant.slug, MemberIn.model_validate({
            "issue_price_fen_per_point": Decimal(issue), "redemption_value_fen_per_point": Decimal(redeem),
            "funding": funding}))
        member.joined_at = local(2026, 1, 1)
    db.flush()
    return World(operator, a, b, coalition)


def link(db: Session, acc: Access, profile_id: int, card_no: str | None = None,
         consent: str | None = "store form") -> str:
    card, _, _ = cards.link(db, acc, LinkIn(profile_id=profile_id, card_no=card_no, consent_source=consent))
    return card


def prepaid_balance(db: Session, coalition_id: int, tenant_id: int) -> int:
    return db.scalars(select(CoalitionMember.prepaid_balance).where(
        CoalitionMember.coalition_id == coalition_id, CoalitionMember.tenant_id == tenant_id)
        .execution_options(populate_existing=True)).one()


def check_invariants(db: Session, coalition_id: int) -> None:
    """Every lot's remaining is the sum of its entries and within [0, amount]."""
    db.flush()
    sums = dict(db.execute(select(CoalitionEntry.lot_id, func.sum(CoalitionEntry.points)).where(
        CoalitionEntry.coalition_id == coalition_id, CoalitionEntry.lot_id.is_not(None))
        .group_by(CoalitionEntry.lot_id)).all())
    for lot in db.scalars(select(CoalitionLot).where(CoalitionLot.coalition_id == coalition_id)
                          .execution_options(populate_existing=True)):
        assert lot.remaining == sums[lot.id], f"lot {lot.id}"
        assert 0 <= lot.remaining <= lot.amount
