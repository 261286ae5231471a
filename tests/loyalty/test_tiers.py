"""Tiers, and what a OneID merge and unmerge do to points and tiers."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.db import utcnow
from lianjie.errors import ValidationFailed
from lianjie.identity import merging
from lianjie.identity.models import Merge
from lianjie.loyalty import ledger, programme, service, tiers
from lianjie.tenants.models import Merchant
from tests.factories import make_merchant
from tests.identity.helpers import customers, msg, send
from tests.loyalty.helpers import check_invariants, order, person, set_programme

DAY = dt.timedelta(days=1)
TIERS = [{"code": "member", "name": "会员", "threshold": 0},
         {"code": "silver", "name": "银卡", "threshold": 100},
         {"code": "gold", "name": "金卡", "threshold": 500, "points_multiplier": "1.5", "member_price": True}]


@pytest.fixture
def shop(db: Session) -> Merchant:
    merchant = make_merchant(db)
    set_programme(db, merchant.id, tiers=TIERS, pending_days=0,
                  qualification={"metric": "points_earned", "window_days": 365, "grace_days": 30})
    return merchant


def tier_of(db: Session, shop: Merchant, profile_id: int) -> str | None:
    balance = service.balance(db, shop.id, profile_id)
    return balance.tier.code if balance.tier else None


def evaluate(db: Session, shop: Merchant, profile_id: int, now: dt.datetime) -> None:
    customer = ledger.customer_of(db, shop.id, profile_id)
    tiers.evaluate(db, programme.load(db, shop.id), shop.id, customer.root, customer.profile_ids, now)


def test_tiers_upgrade_at_once_and_the_gold_multiplier_applies(db: Session, shop: Merchant) -> None:
    buyer = person(db, shop.id, "U1")
    order(db, shop.id, buyer, ("S", None, 12000), at=utcnow() - DAY)
    assert tier_of(db, shop, buyer) == "silver"
    order(db, shop.id, buyer, ("S", None, 40000), at=utcnow() - DAY)
    assert tier_of(db, shop, buyer) == "gold"
    order(db, shop.id, buyer, ("S", None, 10000), at=utcnow() - DAY)  # 100 points x 1.5
    assert service.balance(db, shop.id, buyer).available == 120 + 400 + 150
    balance = service.balance(db, shop.id, buyer)
    assert balance.tier is not None
    assert balance.tier.member_price
    history = [(r.previous_code, r.tier_code) for r in service.tier_history(db, shop.id, buyer)]
    assert history == [("silver", "gold"), (None, "silver")]


def test_downgrade_waits_for_the_periodic_evaluation_and_the_grace_period(db: Session, shop: Merchant) -> None:
    buyer = person(db, shop.id, "U1")
    order(db, shop.id, buyer, ("S", None, 60000), at=utcnow() - DAY)
    assert tier_of(db, shop, buyer) == "gold"
    year_later = utcnow() + 400 * DAY  # the qualifying points have left the window
    evaluate(db, shop, buyer, year_later)
    assert tier_of(db, shop, buyer) == "gold"
    due = service.balance(db, shop.id, buyer).tier
    assert due is not None
    assert due.downgrade_due_at is not None
    evaluate(db, shop, buyer, year_later + 10 * DAY)
    assert tier_of(db, shop, buyer) == "gold"
    evaluate(db, shop, buyer, year_later + 31 * DAY)
    assert tier_of(db, shop, buyer) == "member"


def test_a_manual_tier_holds_until_its_end_date(db: Session, shop: Merchant) -> None:
    buyer = person(db, shop.id, "U1")
    ledger.earn(db, shop.id, buyer, "signup", event="Signed Up")
    assert tier_of(db, shop, buyer) == "silver"
    with pytest.raises(ValidationFailed):
        tiers.set_manual(db, programme.load(db, shop.id), shop.id, buyer, [buyer], "diamond", until=None,
                         reason="vip", operator="ops")
    tiers.set_manual(db, programme.load(db, shop.id), shop.id, buyer, [buyer], "gold",
                     until=utcnow() + 10 * DAY, reason="brand ambassador", operator="ops@huamei")
    evaluate(db, shop, buyer, utcnow() + 5 * DAY)
    assert tier_of(db, shop, buyer) == "gold"
    evaluate(db, shop, buyer, utcnow() + 11 * DAY)  # manual period over: grace starts
    evaluate(db, shop, buyer, utcnow() + 42 * DAY)
    assert tier_of(db, shop, buyer) == "silver"


def test_merge_spend_unmerge_splits_points_and_tiers_back(db: Session, shop: Merchant) -> None:
    """P1 (silver, 200 points) and P2 (gold, 600 points) are one person; then they turn out not to be."""
    set_programme(db, shop.id, tiers=TIERS, pending_days=0, expiry={"kind": "days", "n": 365})
    p1 = person(db, shop.id, "U1")
    send(db, shop.id, msg("identify", anonymousId="dev-2"))
    p2 = customers(db, shop.id, anonymous_id="dev-2").pop()
    order(db, shop.id, p2, ("S", None, 60000), order_no="P2-1", at=utcnow() - 20 * DAY)
    order(db, shop.id, p1, ("S", None, 20000), order_no="P1-1", at=utcnow() - 10 * DAY)
    assert (tier_of(db, shop, p1), tier_of(db, shop, p2)) == ("silver", "gold")

    send(db, shop.id, msg("identify", userId="U1", anonymousId="dev-2"))
    assert customers(db, shop.id, anonymous_id="dev-2") == {p1}
    assert service.balance(db, shop.id, p2).profile_id == p1
    assert service.balance(db, shop.id, p1).available == 800
    assert tier_of(db, shop, p1) == "gold"
    # Spending takes P2's lot first (it expires sooner), then P1's.
    ledger.spend(db, shop.id, p1, "till-1", 700)
    assert service.balance(db, shop.id, p2).available == 100

    merge = db.scalars(select(Merge).where(Merge.survivor_id == p1)).one()
    merging.unmerge(db, shop.id, merge.id)
    assert service.balance(db, shop.id, p1).available == 100
    assert service.balance(db, shop.id, p2).available == 0
    assert (tier_of(db, shop, p1), tier_of(db, shop, p2)) == ("silver", "gold")
    check_invariants(db, shop.id)


def _run(db: Session, shop: Merchant, at: dt.datetime) -> None:
    """The periodic evaluation (what `lianjie loyalty evaluate-tiers` and the job run), as of ``at``."""
    tiers.evaluate_all(db, programme.load(db, shop.id), shop.id, at)


def _tier(db: Session, shop: Merchant, profile_id: int) -> tuple[str | None, bool]:
    """The tier and whether a downgrade is due."""
    tier = service.balance(db, shop.id, profile_id).tier
    return (tier.code, tier.downgrade_due_at is not None) if tier else (None, False)


def test_a_manual_tier_with_an_end_date_holds_through_evaluation_runs(db: Session, shop: Merchant) -> None:
    """Gold by hand for 60 days for a customer who qualifies for nothing by then; the runs before the end
    date change nothing, after it the normal grace period starts and then the downgrade."""
    set_programme(db, shop.id, tiers=TIERS, pending_days=0,
                  qualification={"metric": "points_earned", "window_days": 30, "grace_days": 10})
    buyer = person(db, shop.id, "U1")
    start = utcnow()
    ledger.earn(db, shop.id, buyer, "visit", points=150)
    tiers.set_manual(db, programme.load(db, shop.id), shop.id, buyer, [buyer], "gold",
                     until=start + 60 * DAY, reason="brand ambassador", operator="ops@huamei")
    for day in (1, 31, 45, 59):  # from day 31 the 150 points are out of the window: qualifies for none
        _run(db, shop, start + day * DAY)
        assert _tier(db, shop, buyer) == ("gold", False), day
    _run(db, shop, start + 61 * DAY)
    assert _tier(db, shop, buyer) == ("gold", True)  # the end date passed: grace
    _run(db, shop, start + 70 * DAY)
    assert _tier(db, shop, buyer) == ("gold", True)
    _run(db, shop, start + 72 * DAY)
    assert _tier(db, shop, buyer) == ("member", False)


def test_an_upgrade_above_a_manual_tier_applies_and_the_manual_tier_stays_the_floor(db: Session,
                                                                                    shop: Merchant) -> None:
    """Silver by hand until day 60; the customer then earns gold. Gold applies at once; when the points
    leave the window the grace period runs and the customer falls to silver, not lower, until day 60;
    after it, grace again and then what they qualify for."""
    set_programme(db, shop.id, tiers=TIERS, pending_days=0,
                  qualification={"metric": "points_earned", "window_days": 30, "grace_days": 10})
    buyer = person(db, shop.id, "U1")
    start = utcnow()
    ledger.earn(db, shop.id, buyer, "visit", points=50)
    assert _tier(db, shop, buyer) == ("member", False)
    tiers.set_manual(db, programme.load(db, shop.id), shop.id, buyer, [buyer], "silver",
                     until=start + 60 * DAY, reason="store opening VIP", operator="ops@huamei")
    _run(db, shop, start + 5 * DAY)
    assert _tier(db, shop, buyer) == ("silver", False)
    ledger.earn(db, shop.id, buyer, "campaign", points=500)
    assert _tier(db, shop, buyer) == ("gold", False)  # qualified above the manual tier: applies at once
    _run(db, shop, start + 20 * DAY)
    assert _tier(db, shop, buyer) == ("gold", False)
    _run(db, shop, start + 35 * DAY)  # the points left the window: qualifies for member only
    assert _tier(db, shop, buyer) == ("gold", True)
    _run(db, shop, start + 46 * DAY)
    assert _tier(db, shop, buyer) == ("silver", False)  # down to the manual tier, not below it
    _run(db, shop, start + 55 * DAY)
    assert _tier(db, shop, buyer) == ("silver", False)
    _run(db, shop, start + 61 * DAY)
    assert _tier(db, shop, buyer) == ("silver", True)
    _run(db, shop, start + 72 * DAY)
    assert _tier(db, shop, buyer) == ("member", False)
    history = [(r.previous_code, r.tier_code, r.reason) for r in service.tier_history(db, shop.id, buyer)]
    assert history[:3] == [("silver", "member", "downgraded"), ("silver", "silver", "at_risk"),
                           ("gold", "silver", "downgraded")]
