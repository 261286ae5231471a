"""Coalition cards and points: consent to link, one card across merchants, prepaid blocks, FIFO
redemption across issuers, idempotent retries, and cards following OneID merges and unmerges."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lianjie.errors import LianjieError
from lianjie.identity import merging, privacy
from lianjie.identity.models import Consent, Merge
from lianjie.identity.schemas import Channel, ConsentIn, Purpose
from lianjie.identity.service import current_consent
from lianjie.loyalty.coalition import cards, points, setup
from lianjie.loyalty.coalition.models import CoalitionCard, CoalitionCardLink, CoalitionEntry, CoalitionOperation
from lianjie.loyalty.coalition.schemas import MemberIn
from tests.factories import make_merchant
from tests.identity.helpers import customers, msg, send
from tests.loyalty.coalition.helpers import check_invariants, link, local, make_world, prepaid_balance
from tests.loyalty.helpers import person

NOW = local(2026, 6, 10, 12)


def _code(call: object) -> str:
    with pytest.raises(LianjieError) as refused:
        call()  # type: ignore[operator]
    return refused.value.code


def _count(db: Session, model: type) -> int:
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


def test_linking_needs_the_customers_consent_at_each_merchant(db: Session) -> None:
    w = make_world(db)
    a, b = w.acc(db, w.a), w.acc(db, w.b)
    pa, pb = person(db, w.a.id, "zhao@A"), person(db, w.b.id, "zhao@B")
    assert _code(lambda: link(db, a, pa, consent=None)) == "consent_required"
    assert _count(db, CoalitionCard) == 0
    privacy.record_consent(db, w.a.id, pa, ConsentIn(purpose=Purpose.COALITION, channel=Channel.ALL, granted=True,
                                                     source="miniprogram"))
    card = link(db, a, pa, consent=None)  # consent on record is enough
    # B has no consent of its own: A's consent does not travel to another merchant.
    assert _code(lambda: link(db, b, pb, card_no=card, consent=None)) == "consent_required"
    assert link(db, b, pb, card_no=card, consent="store SZ01 form") == card
    assert link(db, b, pb, card_no=card, consent=None) == card  # again: the same link, nothing new
    assert _count(db, CoalitionCardLink) == 2
    assert [(c.purpose, c.channel, c.granted, c.source) for c in current_consent(db, [pb])] == [
        ("coalition", "all", True, "store SZ01 form")]  # recorded in B's consent history
    assert _count(db, Consent) == 2
    # Withdrawing consent at B stops the card there (not at A) until the customer agrees again.
    points.earn(db, a, card, "a-1", 10, now=NOW)
    privacy.record_consent(db, w.b.id, pb, ConsentIn(purpose=Purpose.COALITION, channel=Channel.ALL, granted=False,
                                                     source="customer service call"))
    assert _code(lambda: points.redeem(db, b, card, "b-1", 5, now=NOW)) == "consent_withdrawn"
    assert cards.describe(db, a, card, now=NOW).balance == 10
    assert _code(lambda: link(db, b, pb, card_no=card, consent=None)) == "consent_required"
    assert link(db, b, pb, card_no=card, consent="store SZ01 form, again") == card
    points.redeem(db, b, card, "b-1", 5, now=NOW)
    # A customer already holding a card cannot be linked to another one at the same merchant.
    other = link(db, a, person(db, w.a.id, "qian@A"))
    assert _code(lambda: link(db, b, pb, card_no=other)) == "already_linked"
    assert _code(lambda: link(db, b, pb, card_no="0000")) == "card_not_found"
    # Another merchant's profile is not found; cards are only visible where linked.
    assert _code(lambda: link(db, b, pa)) == "profile_not_found"
    assert _code(lambda: cards.describe(db, b, other)) == "card_not_linked"


def test_points_earned_at_a_are_spent_at_b_soonest_expiring_first(db: Session) -> None:
    w = make_world(db, b_terms=("12", "9", "postpaid"), expiry_days=30)
    a, b = w.acc(db, w.a), w.acc(db, w.b)
    card = link(db, a, person(db, w.a.id, "sun@A"))
    link(db, b, person(db, w.b.id, "sun@B"), card_no=card)
    points.earn(db, a, card, "a1", 100, now=local(2026, 6, 1))
    points.earn(db, b, card, "b1", 50, now=local(2026, 5, 20))  # expires first
    points.redeem(db, b, card, "r1", 80, now=NOW)
    taken = db.execute(select(CoalitionEntry.tenant_id, CoalitionEntry.points).where(
        CoalitionEntry.kind == "redeem").order_by(CoalitionEntry.id)).all()
    assert [tuple(t) for t in taken] == [(w.b.id, -50), (w.b.id, -30)]  # booked at B, the redeemer
    assert _code(lambda: points.redeem(db, a, card, "r2", 71, now=NOW)) == "insufficient_points"
    assert cards.describe(db, a, card, now=NOW).balance == 70
    # Lapsed points are not spendable even before the expiry job ran.
    assert _code(lambda: points.redeem(db, a, card, "r3", 1, now=local(2026, 7, 2))) == "insufficient_points"
    assert _count(db, CoalitionOperation) == 3  # refused requests kept no key
    check_invariants(db, w.coalition.id)


def test_retries_apply_once_and_a_reused_key_is_refused(db: Session) -> None:
    w = make_world(db)
    a, b = w.acc(db, w.a), w.acc(db, w.b)
    card = link(db, a, person(db, w.a.id, "zhou@A"))
    first = points.earn(db, a, card, "order-9", 30, order_no="9", now=NOW)
    again = points.earn(db, a, card, "order-9", 30, order_no="9", now=NOW)
    assert (again.operation_id, again.points, again.replayed, first.replayed) == (first.operation_id, 30, True, False)
    assert _code(lambda: points.earn(db, a, card, "order-9", 31, order_no="9", now=NOW)) == "idempotency_key_reused"
    assert _code(lambda: points.redeem(db, a, card, "order-9", 30, now=NOW)) == "idempotency_key_reused"
    # Keys are per merchant: B's till may use the same key for its own block purchase.
    points.purchase(db, b, "order-9", 10, now=NOW)
    assert cards.describe(db, a, card, now=NOW).balance == 30
    assert _count(db, CoalitionEntry) == 2


def test_a_prepaid_block_stops_earning_when_empty(db: Session) -> None:
    w = make_world(db)  # B is prepaid
    a, b = w.acc(db, w.a), w.acc(db, w.b)
    card = link(db, b, person(db, w.b.id, "wu@B"))
    assert _code(lambda: points.earn(db, b, card, "e0", 1, now=NOW)) == "prepaid_block_empty"
    points.purchase(db, b, "block-1", 100, now=NOW)
    points.earn(db, b, card, "e1", 60, now=NOW)
    assert _code(lambda: points.earn(db, b, card, "e2", 41, now=NOW)) == "prepaid_block_empty"  # never partly
    points.earn(db, b, card, "e3", 40, now=NOW)
    assert prepaid_balance(db, w.coalition.id, w.b.id) == 0
    assert _code(lambda: points.purchase(db, a, "block-a", 100, now=NOW)) == "not_prepaid"
    # Switching to postpaid with points left in the block is refused; once empty it is allowed.
    points.purchase(db, b, "block-2", 5, now=NOW)
    terms = MemberIn(issue_price_fen_per_point=Decimal("12"), redemption_value_fen_per_point=Decimal("9"))
    assert _code(lambda: setup.put_member(db, w.acc(db, w.operator), "yuedong", terms)) == "prepaid_block_left"
    assert cards.describe(db, b, card, now=NOW).balance == 100


def test_roles_and_leaving_the_coalition(db: Session) -> None:
    w = make_world(db)
    op = w.acc(db, w.operator)
    card = link(db, w.acc(db, w.a), person(db, w.a.id, "zheng@A"))
    setup.put_member(db, op, "huamei", MemberIn(role="redeemer", issue_price_fen_per_point=Decimal(1),
                                                redemption_value_fen_per_point=Decimal(1)))
    assert _code(lambda: points.earn(db, w.acc(db, w.a), card, "x", 5, now=NOW)) == "role_forbids"
    setup.put_member(db, op, "huamei", MemberIn(issue_price_fen_per_point=Decimal(1),
                                                redemption_value_fen_per_point=Decimal(1), left_at=local(2026, 6, 1)))
    assert _code(lambda: points.earn(db, w.acc(db, w.a), card, "x", 5, now=NOW)) == "member_left"
    assert _code(lambda: setup.access(db, "tpoint", w.a.id, operator=True)) == "not_operator"
    outsider = make_merchant(db, "waibu", "外部")
    assert _code(lambda: setup.access(db, "tpoint", outsider.id)) == "coalition_not_found"


def test_cards_follow_a_oneid_merge_and_split_back_on_unmerge(db: Session) -> None:
    """At A, P1 and P2 hold different cards; A's OneID finds they are one person, then undoes it."""
    w = make_world(db, a_terms=("10", "8", "postpaid"))
    a = w.acc(db, w.a)
    p1 = person(db, w.a.id, "U1")
    send(db, w.a.id, msg("identify", anonymousId="dev-2"))
    p2 = customers(db, w.a.id, anonymous_id="dev-2").pop()
    c1, c2 = link(db, a, p1), link(db, a, p2)
    points.earn(db, a, c1, "e1", 100, now=NOW)
    points.earn(db, a, c2, "e2", 50, now=local(2026, 6, 1))

    send(db, w.a.id, msg("identify", userId="U1", anonymousId="dev-2"))  # OneID merges P2 into P1
    assert cards.describe(db, a, c1, now=NOW).balance == 150
    assert cards.describe(db, a, c2, now=NOW).card_no == c1  # the absorbed card's number still works
    assert cards.card_of_profile(db, a, p2) == c1
    points.redeem(db, a, c2, "r1", 70, now=NOW)  # 50 from C2's lot (sooner), 20 from C1's

    merge = db.scalars(select(Merge).where(Merge.survivor_id == p1)).one()
    merging.unmerge(db, w.a.id, merge.id)
    assert cards.describe(db, a, c1, now=NOW).balance == 80
    assert cards.describe(db, a, c2, now=NOW).balance == 0  # what was spent while merged stays spent
    assert (cards.card_of_profile(db, a, p1), cards.card_of_profile(db, a, p2)) == (c1, c2)
    check_invariants(db, w.coalition.id)
