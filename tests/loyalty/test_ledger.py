"""The points ledger on real SQLite and PostgreSQL: earning by rules, lots and expiry order, holds,
idempotency, refunds under each overdraw policy, adjustments and the expiry job."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lianjie.db import utcnow
from lianjie.errors import Conflict, ValidationFailed
from lianjie.loyalty import ledger, service
from lianjie.loyalty.models import PointsEntry, PointsLot
from lianjie.tenants.models import Merchant
from tests.factories import make_merchant
from tests.loyalty.helpers import check_invariants, order, person, refund, set_programme

DAY = dt.timedelta(days=1)


@pytest.fixture
def shop(db: Session) -> Merchant:
    return make_merchant(db)


def available(db: Session, shop: Merchant, profile_id: int) -> int:
    return service.balance(db, shop.id, profile_id).available


def test_an_order_earns_by_the_rules_and_a_replay_earns_nothing_more(db: Session, shop: Merchant) -> None:
    set_programme(db, shop.id, points_per_yuan="1", multipliers={"categories": {"BEAUTY": "2"}},
                  exclusions={"skus": ["GIFT-CARD"]}, pending_days=7)
    buyer = person(db, shop.id, "U1")
    at = utcnow() - 10 * DAY
    # 88.80 yuan plain + 50.00 yuan of beauty at double + a gift card that earns nothing
    order(db, shop.id, buyer, ("SKU-1", "FOOD", 8880), ("SKU-2", "BEAUTY", 5000), ("GIFT-CARD", None, 20000),
          order_no="A-1", at=at)
    order(db, shop.id, buyer, ("SKU-1", "FOOD", 8880), ("SKU-2", "BEAUTY", 5000), ("GIFT-CARD", None, 20000),
          order_no="A-1", at=at)  # the same order published again
    assert available(db, shop, buyer) == 88 + 100
    order(db, shop.id, None, ("SKU-1", "FOOD", 10000), order_no="GUEST-1")  # a guest: nobody earns
    check_invariants(db, shop.id)


def test_points_are_pending_through_the_return_window(db: Session, shop: Merchant) -> None:
    set_programme(db, shop.id, pending_days=7)
    buyer = person(db, shop.id, "U1")
    order(db, shop.id, buyer, ("SKU-1", None, 30000), at=utcnow() - 2 * DAY)
    balance = service.balance(db, shop.id, buyer)
    assert (balance.available, balance.pending) == (0, 300)
    with pytest.raises(ValidationFailed) as caught:
        ledger.spend(db, shop.id, buyer, "spend-1", 10)
    assert caught.value.code == "insufficient_points"


def test_a_per_order_cap_and_the_tier_multiplier_apply(db: Session, shop: Merchant) -> None:
    set_programme(db, shop.id, max_points_per_order=500)
    buyer = person(db, shop.id, "U1")
    order(db, shop.id, buyer, ("SKU-1", None, 1_000_000), at=utcnow() - 30 * DAY)
    assert available(db, shop, buyer) == 500


def test_spending_takes_the_soonest_expiring_lots_first(db: Session, shop: Merchant) -> None:
    set_programme(db, shop.id, pending_days=0, expiry={"kind": "days", "n": 100})
    buyer = person(db, shop.id, "U1")
    now = utcnow()
    order(db, shop.id, buyer, ("S", None, 5000), order_no="late", at=now - 10 * DAY)  # expires in 90 days
    order(db, shop.id, buyer, ("S", None, 3000), order_no="early", at=now - 50 * DAY)  # expires in 50 days
    ledger.adjust(db, shop.id, buyer, "gift", 20, reason="apology", operator="ops@huamei")  # expires in 100
    ledger.spend(db, shop.id, buyer, "spend-1", 40)
    lots = {lot.amount: lot.remaining for lot in db.scalars(select(PointsLot))}
    assert lots == {30: 0, 50: 40, 20: 20}
    assert available(db, shop, buyer) == 60
    check_invariants(db, shop.id)


def test_a_hold_is_confirmed_or_cancelled_back_into_its_lots(db: Session, shop: Merchant) -> None:
    buyer = person(db, shop.id, "U1")
    ledger.earn(db, shop.id, buyer, "signup", event="Signed Up")
    hold = ledger.spend(db, shop.id, buyer, "till-1", 60, hold=True)
    assert available(db, shop, buyer) == 40
    ledger.cancel_hold(db, shop.id, hold.operation_id)
    assert ledger.cancel_hold(db, shop.id, hold.operation_id).replayed
    assert available(db, shop, buyer) == 100
    with pytest.raises(Conflict):
        ledger.confirm_hold(db, shop.id, hold.operation_id)
    second = ledger.spend(db, shop.id, buyer, "till-2", 70, hold=True)
    ledger.confirm_hold(db, shop.id, second.operation_id)
    assert ledger.confirm_hold(db, shop.id, second.operation_id).replayed
    with pytest.raises(Conflict):
        ledger.cancel_hold(db, shop.id, second.operation_id)
    assert available(db, shop, buyer) == 30
    check_invariants(db, shop.id)


def test_a_lapsed_hold_is_cancelled_by_the_expiry_job(db: Session, shop: Merchant) -> None:
    set_programme(db, shop.id, hold_minutes=15)
    buyer = person(db, shop.id, "U1")
    ledger.earn(db, shop.id, buyer, "signup", points=50)
    hold = ledger.spend(db, shop.id, buyer, "till-1", 50, hold=True)
    run = ledger.expire_due(db, shop.id, utcnow() + dt.timedelta(minutes=16))
    assert (run.holds_cancelled, run.released, run.expired) == (1, 50, 0)
    assert available(db, shop, buyer) == 50
    with pytest.raises(Conflict):
        ledger.confirm_hold(db, shop.id, hold.operation_id)
    check_invariants(db, shop.id)


def test_an_idempotency_key_applies_once_and_cannot_be_reused_for_another_request(db: Session,
                                                                                   shop: Merchant) -> None:
    buyer = person(db, shop.id, "U1")
    first = ledger.earn(db, shop.id, buyer, "k-1", points=10)
    again = ledger.earn(db, shop.id, buyer, "k-1", points=10)
    assert (again.operation_id, again.replayed, first.replayed) == (first.operation_id, True, False)
    assert available(db, shop, buyer) == 10
    with pytest.raises(Conflict) as caught:
        ledger.earn(db, shop.id, buyer, "k-1", points=11)
    assert caught.value.code == "idempotency_key_reused"
    with pytest.raises(Conflict):
        ledger.spend(db, shop.id, buyer, "k-1", 5)
    assert available(db, shop, buyer) == 10


def test_partial_refunds_take_back_exactly_what_the_order_earned(db: Session, shop: Merchant) -> None:
    set_programme(db, shop.id, pending_days=7)
    buyer = person(db, shop.id, "U1")
    order(db, shop.id, buyer, ("S", None, 10000), order_no="O-1")  # 100 points, still pending
    for i in range(3):  # a third each: 33, 33, 34 fen-proportional
        refund(db, shop.id, "O-1", [3333, 3333, 3334][i], 10000, refund_no=f"O-1-R{i}")
        refund(db, shop.id, "O-1", [3333, 3333, 3334][i], 10000, refund_no=f"O-1-R{i}")  # a retried refund
    balance = service.balance(db, shop.id, buyer)
    assert (balance.available, balance.pending, balance.debt) == (0, 0, 0)
    taken = db.scalar(select(func.sum(PointsEntry.amount)).where(PointsEntry.kind == "debit"))
    assert taken == -100
    check_invariants(db, shop.id)


@pytest.mark.parametrize(("policy", "expected"), [
    ("clawback", {"from_order_lots": 30, "clawed_back": 50, "debt": 20}),
    ("negative_balance", {"from_order_lots": 30, "debt": 70}),
    ("clawback_then_write_off", {"from_order_lots": 30, "clawed_back": 50, "written_off": 20}),
])
def test_refunding_points_already_spent_follows_the_policy(db: Session, shop: Merchant, policy: str,
                                                          expected: dict[str, int]) -> None:
    set_programme(db, shop.id, overdraw=policy, pending_days=0)
    buyer = person(db, shop.id, "U1")
    order(db, shop.id, buyer, ("S", None, 10000), order_no="O-1", at=utcnow() - DAY)  # 100 points
    ledger.spend(db, shop.id, buyer, "spend", 70)
    ledger.earn(db, shop.id, buyer, "review", points=50)
    refund(db, shop.id, "O-1", 10000, 10000, refund_no="R-1")
    op = ledger.stored_result(db, db.scalar(select(func.max(PointsEntry.operation_id))) or 0)
    assert op.outcome == {"reversed": 100, **expected}
    balance = service.balance(db, shop.id, buyer)
    debt = expected.get("debt", 0)
    assert balance.debt == debt
    assert balance.available == max(80 - 30 - expected.get("clawed_back", 0) - debt, 0)
    # Later points pay the debt off first.
    ledger.earn(db, shop.id, buyer, "checkin", points=100)
    after = service.balance(db, shop.id, buyer)
    assert after.debt == 0
    assert after.available == 80 - 30 - expected.get("clawed_back", 0) - debt + 100
    check_invariants(db, shop.id)


def test_adjustments_need_a_reason_and_cannot_take_more_than_there_is(db: Session, shop: Merchant) -> None:
    buyer = person(db, shop.id, "U1")
    with pytest.raises(ValidationFailed):
        ledger.adjust(db, shop.id, buyer, "adj-1", 10, reason=" ", operator="ops")
    ledger.adjust(db, shop.id, buyer, "adj-2", 10, reason="store opening gift", operator="ops")
    with pytest.raises(ValidationFailed) as caught:
        ledger.adjust(db, shop.id, buyer, "adj-3", -11, reason="typo", operator="ops")
    assert caught.value.code == "insufficient_points"
    ledger.adjust(db, shop.id, buyer, "adj-4", -4, reason="typo", operator="ops")
    assert available(db, shop, buyer) == 6
    check_invariants(db, shop.id, allow_debt=False)


def test_expiry_job_expires_lapsed_lots_once(db: Session, shop: Merchant) -> None:
    set_programme(db, shop.id, pending_days=0, expiry={"kind": "days", "n": 30})
    buyer = person(db, shop.id, "U1")
    order(db, shop.id, buyer, ("S", None, 4000), at=utcnow() - 40 * DAY)  # lapsed 10 days ago
    order(db, shop.id, buyer, ("S", None, 2500), at=utcnow() - 20 * DAY)  # 10 days left
    balance = service.balance(db, shop.id, buyer)
    assert balance.available == 25
    assert [e.points for e in balance.expiring_soon] == [25]
    assert ledger.expire_due(db, shop.id, utcnow()).expired == 40
    assert ledger.expire_due(db, shop.id, utcnow()).done
    assert service.balance(db, shop.id, buyer).available == 25
    check_invariants(db, shop.id)


def test_expiry_dates_follow_the_merchants_calendar() -> None:
    from lianjie.loyalty.programme import ProgrammeConfig

    # 2026-01-31 17:00 UTC is already 1 February in Shanghai.
    earned = dt.datetime(2026, 1, 31, 17, 0, tzinfo=dt.UTC)
    month = ProgrammeConfig.model_validate({"expiry": {"kind": "end_of_month", "n": 0}})
    assert month.expires_at(earned) == dt.datetime(2026, 2, 28, 16, 0, tzinfo=dt.UTC)  # 1 March 00:00 +08
    year = ProgrammeConfig.model_validate({"expiry": {"kind": "end_of_year", "n": 1}})
    assert year.expires_at(earned) == dt.datetime(2027, 12, 31, 16, 0, tzinfo=dt.UTC)
    never = ProgrammeConfig.model_validate({"expiry": {"kind": "never"}})
    assert never.expires_at(earned) is None


def test_the_invariant_check_finds_an_entry_whose_lot_is_gone(db: Session, shop: Merchant) -> None:
    """The ledger's tables have no foreign keys (migration 0013); check_invariants is what would notice."""
    buyer = person(db, shop.id, "U1")
    ledger.earn(db, shop.id, buyer, "k-1", points=50)
    check_invariants(db, shop.id)
    entry = db.scalars(select(PointsEntry).where(PointsEntry.tenant_id == shop.id)).one()
    entry.lot_id = 10**9
    with pytest.raises(AssertionError, match="points_entries naming a missing lot"):
        check_invariants(db, shop.id)
