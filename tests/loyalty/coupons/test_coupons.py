"""Coupons on real SQLite and PostgreSQL: validation reasons, issuing limits and stock, redemption
by the till and by incoming orders, restoration on refund, conflicts, and OneID merge/unmerge."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lianjie.commerce import refunds
from lianjie.commerce.schemas import RefundIn
from lianjie.crypto import get_cipher
from lianjie.db import utcnow
from lianjie.errors import Conflict, LianjieError
from lianjie.identity import merging
from lianjie.identity.models import Merge
from lianjie.loyalty.coupons import issuing, redemption, templates
from lianjie.loyalty.coupons.models import Coupon, CouponConflict, CouponIssue, CouponRedemption, CouponTemplate
from lianjie.loyalty.coupons.schemas import IssueIn, TemplatePatch
from lianjie.tenants.models import Merchant
from tests.identity.helpers import customers, msg, send
from tests.loyalty.coupons.helpers import basket, give, redeem_in, sell, shop, template
from tests.loyalty.helpers import person

DAY = dt.timedelta(days=1)


@pytest.fixture
def merchant(db: Session) -> Merchant:
    return shop(db)


def coupon(db: Session, tenant_id: int, code: str) -> Coupon:
    found = issuing.find(db, tenant_id, code)
    db.refresh(found)
    return found


def state(db: Session) -> list[tuple[str, str, str | None, int | None]]:
    db.flush()
    rows = db.execute(select(Coupon.code, Coupon.status, Coupon.order_no, Coupon.profile_id).order_by(Coupon.id))
    return [(code, status, order_no, profile) for code, status, order_no, profile in rows]


def refund(db: Session, tenant_id: int, order_no: str, refund_no: str, line_no: int | None = None,
           at: dt.datetime | None = None) -> None:
    body: dict[str, Any] = {"refund_no": refund_no}
    if line_no is not None:
        body["lines"] = [{"line_no": line_no, "quantity": 1}]
    if at is not None:
        body["refunded_at"] = at.isoformat()
    refunds.record_refund(db, get_cipher(), tenant_id, order_no, RefundIn.model_validate(body))


def test_validate_says_why_not_and_writes_nothing(db: Session, merchant: Merchant) -> None:
    t = merchant.id
    p1, p2 = person(db, t, "U1"), person(db, t, "U2")
    template(db, t, "CLOTHES", kind="spend_save", threshold_fen=20000, amount_off_fen=3000,
             scope={"categories": ["C1"], "stores": ["SH001"]})
    code = give(db, t, "CLOTHES", p1)[0]
    before = state(db)
    # Categories come from the catalogue: the dress (C111, under C1) counts, the lipstick does not.
    ok = redemption.validate(db, t, basket(code, ("DRESS", 1, 39900), ("LIPSTICK", 1, 19900), profile_id=p1,
                                           store_code="SH001"))
    assert (ok.applicable, ok.discount_fen, ok.eligible_fen) == (True, 3000, 39900)
    assert [(a.line, a.sku, a.discount_fen) for a in ok.allocations] == [(0, "DRESS", 3000)]
    wrong = redemption.validate(db, t, basket(code, ("LIPSTICK", 1, 19900), profile_id=p2, store_code="BJ001"))
    assert not wrong.applicable
    assert [r.code for r in wrong.reasons] == ["coupon_other_customer", "coupon_wrong_store",
                                               "coupon_no_eligible_items"]
    assert wrong.discount_fen == 0
    missing = redemption.validate(db, t, basket("NOPE-NOPE-NOPE", ("DRESS", 1, 39900)))
    assert [r.code for r in missing.reasons] == ["coupon_not_found"]
    later = redemption.validate(db, t, basket(code, ("DRESS", 1, 39900), store_code="SH001", at=utcnow() + 3650 * DAY))
    assert later.applicable  # no validity window on this template
    templates.update(db, t, "CLOTHES", TemplatePatch(status="paused"))
    paused = redemption.validate(db, t, basket(code, ("DRESS", 1, 39900), store_code="SH001"))
    assert [r.code for r in paused.reasons] == ["coupon_paused"]
    assert state(db) == before


def test_validity_window_of_issued_coupons(db: Session, merchant: Merchant) -> None:
    t = merchant.id
    start = utcnow() + 2 * DAY
    template(db, t, "LATER", valid_from=start.isoformat(), valid_until=(start + 5 * DAY).isoformat())
    code = give(db, t, "LATER", person(db, t, "U1"))[0]
    assert coupon(db, t, code).valid_from == start
    too_soon = redemption.validate(db, t, basket(code, ("DRESS", 1, 39900)))
    assert [r.code for r in too_soon.reasons] == ["coupon_not_yet_valid"]
    too_late = redemption.validate(db, t, basket(code, ("DRESS", 1, 39900), at=(start + 5 * DAY).isoformat()))
    assert [r.code for r in too_late.reasons] == ["coupon_expired"]
    assert redemption.validate(db, t, basket(code, ("DRESS", 1, 39900), at=(start + DAY).isoformat())).applicable


def test_per_customer_limit_stock_and_idempotent_issues(db: Session, merchant: Merchant) -> None:
    t = merchant.id
    p1, p2, p3 = (person(db, t, f"U{i}") for i in (1, 2, 3))
    template(db, t, "LIMITED", stock=3, per_customer_limit=2)
    first = give(db, t, "LIMITED", p1, key="a")
    give(db, t, "LIMITED", p1, key="b")
    with pytest.raises(Conflict) as limit:
        give(db, t, "LIMITED", p1, key="c")
    assert limit.value.code == "coupon_limit_reached"
    # P1 is at the limit; P2 and P3 would need 2 of the 1 left: nobody gets one.
    with pytest.raises(Conflict) as stock:
        issuing.issue(db, t, "LIMITED", IssueIn(idempotency_key="list-1", profile_ids=[p1, p2, p3]))
    assert stock.value.code == "coupon_out_of_stock"
    listed = issuing.issue(db, t, "LIMITED", IssueIn(idempotency_key="list-2", profile_ids=[p1, p2])).out(db)
    assert [c.profile_id for c in listed.coupons] == [p2]
    assert [(r.profile_id, r.code) for r in listed.refused] == [(p1, "coupon_limit_reached")]
    with pytest.raises(Conflict) as empty:
        give(db, t, "LIMITED", p3, key="d")
    assert empty.value.code == "coupon_out_of_stock"
    # A retry of an applied key returns the same coupons and draws nothing; another request under it is refused.
    assert give(db, t, "LIMITED", p1, key="a") == first
    with pytest.raises(Conflict) as reused:
        give(db, t, "LIMITED", p2, key="a")
    assert reused.value.code == "idempotency_key_reused"
    db.flush()
    assert templates.get(db, t, "LIMITED").issued == 3
    assert db.scalar(select(func.count()).select_from(Coupon)) == 3
    # Refused requests left their keys unused: a corrected retry may use them.
    assert db.scalar(select(func.count()).select_from(CouponIssue).where(
        CouponIssue.idempotency_key.in_(["c", "d", "list-1"]))) == 0


def test_unbound_codes_are_claimed_once(db: Session, merchant: Merchant) -> None:
    t = merchant.id
    p1, p2 = person(db, t, "U1"), person(db, t, "U2")
    template(db, t, "PRINT", per_customer_limit=1)
    a, b = give(db, t, "PRINT", count=2)
    assert coupon(db, t, a).profile_id is None
    assert issuing.claim(db, t, a.lower(), p1).profile_id == p1  # typed in lower case, dashes and all
    assert issuing.claim(db, t, a, p1).profile_id == p1  # again: a no-op
    with pytest.raises(Conflict) as taken:
        issuing.claim(db, t, a, p2)
    assert taken.value.code == "coupon_already_claimed"
    with pytest.raises(Conflict) as limit:
        issuing.claim(db, t, b, p1)
    assert limit.value.code == "coupon_limit_reached"
    # An unclaimed code redeemed at the till becomes the buyer's.
    sell(db, t, "SO-9", "U2")
    done = redemption.redeem(db, t, redeem_in(b, "SO-9", ("DRESS", 1, 39900), profile_id=p2))
    assert (done.profile_id, done.discount_fen) == (p2, 2000)


def test_redeem_once_idempotently(db: Session, merchant: Merchant) -> None:
    t = merchant.id
    p1 = person(db, t, "U1")
    template(db, t, "PCT", kind="percent_off", percent_off=15, max_discount_fen=5000)
    code = give(db, t, "PCT", p1)[0]
    for order_no in ("SO-1", "SO-2", "SO-3"):
        sell(db, t, order_no, "U1")
    first = redemption.redeem(db, t, redeem_in(code, "SO-1", ("DRESS", 1, 39900), ("LIPSTICK", 1, 19900)))
    # 59,800 × 15% = 8,970, capped at 5,000.
    assert (first.discount_fen, first.replayed) == (5000, False)
    again = redemption.redeem(db, t, redeem_in(code, "SO-1", ("DRESS", 1, 39900), ("LIPSTICK", 1, 19900)))
    assert (again.discount_fen, again.replayed, again.redeemed_at) == (5000, True, first.redeemed_at)
    with pytest.raises(LianjieError) as used:
        redemption.redeem(db, t, redeem_in(code, "SO-2", ("DRESS", 1, 39900)))
    assert (used.value.status_code, used.value.code) == (409, "coupon_already_redeemed")
    with pytest.raises(Conflict):
        redemption.void(db, t, code, "mistake")
    assert state(db) == [(code.replace("-", ""), "redeemed", "SO-1", p1)]
    assert db.scalar(select(func.count()).select_from(CouponRedemption)) == 1
    below = give(db, t, "PCT", p1)[0]
    with pytest.raises(LianjieError) as nothing:
        redemption.redeem(db, t, redeem_in(below, "SO-3", ("DRESS", 1, 0)))
    assert (nothing.value.status_code, nothing.value.code) == (422, "coupon_no_eligible_items")


def test_order_redeems_its_coupon_and_a_full_refund_gives_it_back(db: Session, merchant: Merchant) -> None:
    t = merchant.id
    p1 = person(db, t, "U1")
    template(db, t, "T20")
    code = give(db, t, "T20", p1)[0]
    sell(db, t, "SO-1", "U1", (code, 2000))
    stored = coupon(db, t, code)
    assert (stored.status, stored.order_no, stored.discount_fen) == ("redeemed", "SO-1", 2000)
    refund(db, t, "SO-1", "RF-1", line_no=2)  # the lipstick only: the coupon stays used
    assert coupon(db, t, code).status == "redeemed"
    refund(db, t, "SO-1", "RF-2", line_no=1)  # now the whole order is refunded
    back = coupon(db, t, code)
    assert (back.status, back.order_no, back.discount_fen) == ("issued", None, None)
    trail = db.scalars(select(CouponRedemption)).one()
    assert (trail.order_no, trail.source, trail.restored_by) == ("SO-1", "order", "RF-2")
    # Usable again, for another order.
    sell(db, t, "SO-2", "U1", (code, 2000))
    assert coupon(db, t, code).order_no == "SO-2"
    assert db.scalar(select(func.count()).select_from(CouponConflict)) == 0


def test_refund_after_the_validity_leaves_the_coupon_expired(db: Session, merchant: Merchant) -> None:
    t = merchant.id
    template(db, t, "SHORT", valid_days=1)
    code = give(db, t, "SHORT", person(db, t, "U1"))[0]
    sell(db, t, "SO-1", "U1", (code, 2000))
    # Its day runs out before the refund comes (a refund may not be dated in the future, so the
    # validity is moved back instead of the refund forward).
    coupon(db, t, code).valid_until = utcnow() - dt.timedelta(seconds=1)
    refund(db, t, "SO-1", "RF-1")
    assert coupon(db, t, code).status == "expired"
    assert db.scalars(select(CouponRedemption.restored_by)).one() == "RF-1"


def test_an_order_with_an_unusable_coupon_is_kept_and_the_problem_recorded(db: Session, merchant: Merchant) -> None:
    t = merchant.id
    p1 = person(db, t, "U1")
    person(db, t, "U2")
    template(db, t, "T20")
    code = give(db, t, "T20", p1)[0]
    void = give(db, t, "T20", p1)[0]
    redemption.void(db, t, void, "printed twice")
    sell(db, t, "SO-1", "U1", (code, 2000))
    sell(db, t, "SO-2", "U1", (code, 2000), ("GHOST", 500), (void, 2000))
    mine = give(db, t, "T20", p1)[0]
    sell(db, t, "SO-3", "U2", (mine, 2000))
    assert {o for o in db.scalars(select(CouponConflict.order_no))} == {"SO-2", "SO-3"}
    found = {(c.order_no, c.code, c.reason, c.discount_fen) for c in db.scalars(select(CouponConflict))}
    assert found == {("SO-2", code, "coupon_already_redeemed", 2000), ("SO-2", "GHOST", "coupon_not_found", 500),
                     ("SO-2", void, "coupon_void", 2000), ("SO-3", mine, "coupon_other_customer", 2000)}
    assert coupon(db, t, code).order_no == "SO-1"
    assert coupon(db, t, mine).status == "issued"


def test_till_redeems_for_a_stored_order_and_a_full_refund_gives_it_back(db: Session, merchant: Merchant) -> None:
    t = merchant.id
    p1 = person(db, t, "U1")
    template(db, t, "T20")
    code = give(db, t, "T20", p1)[0]
    sell(db, t, "SO-1", "U1")  # the order first, without the coupon: the till redeems it separately
    redemption.redeem(db, t, redeem_in(code, "SO-1", ("DRESS", 1, 39900), ("LIPSTICK", 1, 19900), profile_id=p1))
    assert db.scalar(select(func.count()).select_from(CouponConflict)) == 0
    assert db.scalars(select(CouponRedemption.source)).all() == ["api"]
    refund(db, t, "SO-1", "RF-1")
    assert coupon(db, t, code).status == "issued"
    with pytest.raises(Conflict) as restored:  # the refunded order cannot take it again; a new order can
        redemption.redeem(db, t, redeem_in(code, "SO-1", ("DRESS", 1, 39900)))
    assert restored.value.code == "coupon_restored"
    assert coupon(db, t, code).status == "issued"
    sell(db, t, "SO-2", "U1")
    assert redemption.redeem(db, t, redeem_in(code, "SO-2", ("DRESS", 1, 39900))).discount_fen == 2000


def test_the_order_redeems_its_coupon_and_the_tills_redeem_call_is_then_a_replay(db: Session,
                                                                                merchant: Merchant) -> None:
    t = merchant.id
    p1 = person(db, t, "U1")
    template(db, t, "T20")
    code = give(db, t, "T20", p1)[0]
    sell(db, t, "SO-1", "U1", (code, 2000))
    again = redemption.redeem(db, t, redeem_in(code, "SO-1", ("DRESS", 1, 39900), ("LIPSTICK", 1, 19900)))
    assert (again.replayed, again.discount_fen, again.profile_id) == (True, 2000, p1)
    assert db.scalars(select(CouponRedemption.source)).all() == ["order"]


def _refused(call: Any) -> tuple[int, str, str | None]:
    with pytest.raises(LianjieError) as caught:
        call()
    return caught.value.status_code, caught.value.code, caught.value.field


def test_a_coupon_is_redeemed_only_for_a_stored_order_of_its_customer(db: Session, merchant: Merchant) -> None:
    t = merchant.id
    p1, p2 = person(db, t, "U1"), person(db, t, "U2")
    template(db, t, "T20")
    mine, free = give(db, t, "T20", p1)[0], give(db, t, "T20", count=1)[0]
    other_shop = shop(db, "yuedong")
    sell(db, other_shop.id, "SO-B", None)  # another merchant's order number
    sell(db, t, "SO-2", "U2")
    sell(db, t, "SO-G", None)  # a guest's
    before = state(db)

    def redeem(code: str, order_no: str, **fields: Any) -> Any:
        return lambda: redemption.redeem(db, t, redeem_in(code, order_no, ("DRESS", 1, 39900), **fields))

    assert _refused(redeem(mine, "SO-NONE", profile_id=p1)) == (404, "order_not_found", "order_no")
    assert _refused(redeem(mine, "SO-B")) == (404, "order_not_found", "order_no")
    assert _refused(redeem(mine, "SO-2")) == (409, "coupon_other_customer", "code")  # U2's order, U1's coupon
    assert _refused(redeem(mine, "SO-2", profile_id=p1)) == (409, "order_other_customer", "order_no")
    assert _refused(redeem(free, "SO-2", profile_id=p1)) == (409, "order_other_customer", "order_no")
    assert _refused(redeem(mine, "SO-G")) == (409, "coupon_other_customer", "code")
    assert _refused(redeem(mine, "SO-G", profile_id=p1)) == (409, "order_other_customer", "order_no")
    assert state(db) == before  # nothing was redeemed or claimed
    assert db.scalar(select(func.count()).select_from(CouponRedemption)) == 0
    # A printed code for a guest's order stays unbound; for U2's order, it becomes U2's.
    assert redemption.redeem(db, t, redeem_in(free, "SO-G", ("DRESS", 1, 39900))).profile_id is None
    sell(db, t, "SO-1", "U1")
    done = redemption.redeem(db, t, redeem_in(mine, "SO-1", ("DRESS", 1, 39900)))  # the order's buyer assumed
    assert (done.profile_id, done.discount_fen) == (p1, 2000)
    assert p2 not in {row[3] for row in state(db)}


def test_coupons_follow_a_merge_and_split_back(db: Session, merchant: Merchant) -> None:
    """P2 (a mini-program visitor) got a welcome coupon; P1 is a member; they turn out to be one person,
    then not."""
    t = merchant.id
    p1 = person(db, t, "U1")
    send(db, t, msg("identify", anonymousId="dev-2"))
    p2 = customers(db, t, anonymous_id="dev-2").pop()
    template(db, t, "WELCOME", per_customer_limit=1)
    code = give(db, t, "WELCOME", p2)[0]
    send(db, t, msg("identify", userId="U1", anonymousId="dev-2"))  # OneID merges P2 into P1
    assert [c.code for c in issuing.of_customer(db, t, p1)[0]] == [issuing.shown(code.replace("-", ""))]
    with pytest.raises(Conflict) as limit:
        give(db, t, "WELCOME", p1)  # the customer already has one, on P2
    assert limit.value.code == "coupon_limit_reached"
    sell(db, t, "SO-1", "U1")
    redemption.redeem(db, t, redeem_in(code, "SO-1", ("DRESS", 1, 39900), profile_id=p1))
    merge = db.scalars(select(Merge).where(Merge.survivor_id == p1)).one()
    merging.unmerge(db, t, merge.id)
    assert issuing.of_customer(db, t, p1) == ([], 0)
    assert [(c.profile_id, c.status) for c in issuing.of_customer(db, t, p2)[0]] == [(p2, "redeemed")]
    assert len(give(db, t, "WELCOME", p1)) == 1  # P1 alone never had one


def test_templates_are_checked_and_repeatable(db: Session, merchant: Merchant) -> None:
    t = merchant.id
    one = template(db, t, "GIFT", kind="free_gift", gift_sku="GIFT")
    assert template(db, t, "GIFT", kind="free_gift", gift_sku="GIFT").id == one.id
    with pytest.raises(Conflict):
        template(db, t, "GIFT", kind="free_gift", gift_sku="DRESS")
    with pytest.raises(LianjieError) as typo:
        template(db, t, "BAD", scope={"categories": ["C9"]})
    assert (typo.value.field, typo.value.code) == ("scope.categories", "unknown_category")
    template(db, t, "STOCK", stock=5)
    give(db, t, "STOCK", count=4)
    with pytest.raises(LianjieError) as low:
        templates.update(db, t, "STOCK", TemplatePatch(stock=3))
    assert low.value.code == "stock_below_issued"
    templates.update(db, t, "STOCK", TemplatePatch(status="paused"))
    with pytest.raises(Conflict):
        give(db, t, "STOCK", count=1, key="after-pause")
    templates.update(db, t, "STOCK", TemplatePatch(status="active"))
    assert len(give(db, t, "STOCK", count=1, key="after-pause")) == 1  # the refused key was not used up
    templates.update(db, t, "STOCK", TemplatePatch(status="ended"))
    with pytest.raises(Conflict):
        give(db, t, "STOCK", count=1)
    with pytest.raises(Conflict):
        templates.update(db, t, "STOCK", TemplatePatch(status="active"))
    assert db.scalar(select(CouponTemplate.issued).where(CouponTemplate.code == "STOCK")) == 5
