"""Coupon arithmetic on baskets, computed by hand: no database, no clock."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lianjie.loyalty.coupons import issuing, rules
from lianjie.loyalty.coupons.rules import Basket, Line

TREE = rules.ancestry_from({"C1": None, "C11": "C1", "C111": "C11", "C2": None})
DRESS, COAT = Line("DRESS", "C111", 1, 39900), Line("COAT", "C11", 1, 59900)
LIPSTICK, GIFT = Line("LIPSTICK", "C2", 1, 19900), Line("GIFT", "C2", 2, 5800)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def rule(kind: str, **fields: Any) -> Any:
    values: dict[str, Any] = {"kind": kind, "amount_off_fen": None, "percent_off": None, "max_discount_fen": None,
              "threshold_fen": None, "per_threshold": False, "gift_sku": None, "min_spend_fen": 0, "scope": {}}
    return SimpleNamespace(**(values | fields))


def run(template: Any, *lines: Line, store: str | None = None, channel: str | None = None) -> rules.Evaluation:
    return rules.evaluate(template, Basket(lines, store, channel), TREE)


def test_amount_off_is_spread_over_lines_in_proportion() -> None:
    result = run(rule("amount_off", amount_off_fen=2000), DRESS, LIPSTICK)
    # 2000 × 39900 / 59800 = 1334.4 and 2000 × 19900 / 59800 = 665.5 round down; the 1 fen left goes
    # to the larger line.
    assert (result.applicable, result.discount_fen, result.eligible_fen) == (True, 2000, 59800)
    assert result.allocations == [1335, 665]


def test_the_discount_never_exceeds_the_eligible_goods() -> None:
    result = run(rule("amount_off", amount_off_fen=50000), LIPSTICK)
    assert (result.discount_fen, result.allocations) == (19900, [19900])


@pytest.mark.parametrize(("percent", "cap", "lines", "expected"), [
    (15, None, (DRESS, LIPSTICK), 8970),  # 59,800 × 15% = 8,970
    (15, 5000, (DRESS, LIPSTICK), 5000),  # capped
    (15, None, (Line("X", None, 1, 19999),), 2999),  # 2,999.85 rounds down to the fen
    (12, None, (Line("X", None, 3, 999),), 119),  # 119.88 -> 119
])
def test_percent_off(percent: int, cap: int | None, lines: tuple[Line, ...], expected: int) -> None:
    assert run(rule("percent_off", percent_off=percent, max_discount_fen=cap), *lines).discount_fen == expected


def test_spend_save_once_and_per_threshold() -> None:
    basket = (DRESS, Line("DRESS", "C111", 1, 5100))  # 45,000 fen
    once = rule("spend_save", threshold_fen=20000, amount_off_fen=3000)
    assert run(once, *basket).discount_fen == 3000
    every = rule("spend_save", threshold_fen=20000, amount_off_fen=3000, per_threshold=True)
    assert run(every, *basket).discount_fen == 6000  # 45,000 // 20,000 = 2 times 30 yuan
    capped = rule("spend_save", threshold_fen=20000, amount_off_fen=3000, per_threshold=True, max_discount_fen=4000)
    assert run(capped, *basket).discount_fen == 4000
    short = run(once, Line("DRESS", "C111", 1, 19999))
    assert not short.applicable
    assert [r.code for r in short.reasons] == ["coupon_below_minimum_spend"]
    assert "¥0.01" in short.reasons[0].message_zh  # 还差一分钱


def test_category_scope_takes_subcategories_and_leaves_other_lines_out() -> None:
    # 满200减30 on 服装 (C1): the dress (C111) and coat (C11) count, the lipstick does not.
    template = rule("spend_save", threshold_fen=20000, amount_off_fen=3000, scope={"categories": ["C1"]})
    result = run(template, DRESS, LIPSTICK, COAT)
    assert (result.eligible_fen, result.discount_fen) == (99800, 3000)
    # 3000 over 39,900 and 59,900: 1199.4 -> 1199 and 1800.6 -> 1800, the fen left to the coat.
    assert result.allocations == [1199, 0, 1801]
    excluded = rule("amount_off", amount_off_fen=1000, scope={"categories": ["C1"], "exclude_skus": ["DRESS"]})
    assert run(excluded, DRESS, COAT).allocations == [0, 1000]
    only_lipstick = run(rule("amount_off", amount_off_fen=1000, scope={"exclude_categories": ["C2"]}), LIPSTICK)
    assert [r.code for r in only_lipstick.reasons] == ["coupon_no_eligible_items"]
    by_sku = run(rule("amount_off", amount_off_fen=1000, scope={"skus": ["LIPSTICK"]}), DRESS, LIPSTICK)
    assert by_sku.allocations == [0, 1000]


def test_minimum_spend_counts_only_the_eligible_part() -> None:
    template = rule("amount_off", amount_off_fen=1000, min_spend_fen=30000, scope={"categories": ["C2"]})
    result = run(template, DRESS, LIPSTICK)  # 59,800 in the basket but only 19,900 of 美妆
    assert [r.code for r in result.reasons] == ["coupon_below_minimum_spend"]
    assert result.eligible_fen == 19900


def test_free_gift() -> None:
    gift = rule("free_gift", gift_sku="GIFT", min_spend_fen=30000)
    with_gift = run(gift, DRESS, GIFT)
    # One unit of the gift line (5,800 for two) is free; the gift does not count towards the 300 yuan.
    assert (with_gift.applicable, with_gift.discount_fen, with_gift.allocations) == (True, 2900, [0, 2900])
    without = run(gift, DRESS)
    assert (without.applicable, without.discount_fen, without.gift_sku, without.gift_in_basket) == (
        True, 0, "GIFT", False)
    only_gift = run(gift, GIFT)
    assert [r.code for r in only_gift.reasons] == ["coupon_below_minimum_spend"]


def test_store_and_channel_scope() -> None:
    template = rule("amount_off", amount_off_fen=1000, scope={"stores": ["SH001"], "channels": ["offline"]})
    assert run(template, DRESS, store="SH001", channel="offline").applicable
    refused = run(template, DRESS, store="BJ001", channel="online")
    assert [r.code for r in refused.reasons] == ["coupon_wrong_store", "coupon_wrong_channel"]
    assert all(r.message and r.message_zh for r in refused.reasons)
    assert refused.discount_fen == 0


def test_validity_days_count_in_the_merchants_zone() -> None:
    template = SimpleNamespace(valid_from=None, valid_until=None, valid_days=7)
    # 15:00 in Shanghai on 24 Nov: valid until the end of 1 Dec, Shanghai time.
    start, until = issuing.validity(template, dt.datetime(2026, 11, 24, 7, tzinfo=dt.UTC), SHANGHAI)  # type: ignore[arg-type]
    assert (start, until) == (dt.datetime(2026, 11, 24, 7, tzinfo=dt.UTC), dt.datetime(2026, 12, 1, 16, tzinfo=dt.UTC))
    # 17:00 UTC is already 25 Nov in Shanghai: one day later.
    _, until = issuing.validity(template, dt.datetime(2026, 11, 24, 17, tzinfo=dt.UTC), SHANGHAI)  # type: ignore[arg-type]
    assert until == dt.datetime(2026, 12, 2, 16, tzinfo=dt.UTC)
    bounded = SimpleNamespace(valid_from=None, valid_until=dt.datetime(2026, 11, 28, tzinfo=dt.UTC), valid_days=7)
    _, until = issuing.validity(bounded, dt.datetime(2026, 11, 24, 7, tzinfo=dt.UTC), SHANGHAI)  # type: ignore[arg-type]
    assert until == dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
    reasons = rules.validity_reasons(dt.datetime(2026, 11, 24, tzinfo=dt.UTC), until,
                                     dt.datetime(2026, 11, 28, tzinfo=dt.UTC), SHANGHAI)
    assert [(r.code, r.message) for r in reasons] == [("coupon_expired", "expired at 2026-11-28 08:00")]


def test_codes_are_typeable_and_forgiving() -> None:
    codes = {issuing.new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(c) == 12 and not set(c) & set("01ILOU") for c in codes)
    code = codes.pop()
    assert issuing.normalise(issuing.shown(code).lower()) == code
    assert issuing.normalise(" " + issuing.shown(code) + " ") == code


SKUS = ["DRESS", "COAT", "LIPSTICK", "GIFT", "OTHER"]
CATEGORY = {"DRESS": "C111", "COAT": "C11", "LIPSTICK": "C2", "GIFT": "C2", "OTHER": None}
kinds = st.one_of(
    st.builds(lambda n: rule("amount_off", amount_off_fen=n), st.integers(1, 100_000)),
    st.builds(lambda p, cap: rule("percent_off", percent_off=p, max_discount_fen=cap), st.integers(1, 99),
              st.none() | st.integers(1, 50_000)),
    st.builds(lambda x, y, every: rule("spend_save", threshold_fen=x, amount_off_fen=y, per_threshold=every),
              st.integers(1, 50_000), st.integers(1, 50_000), st.booleans()),
    st.just(rule("free_gift", gift_sku="GIFT")),
)
scopes = st.fixed_dictionaries({}, optional={
    "skus": st.lists(st.sampled_from(SKUS), max_size=2), "exclude_skus": st.lists(st.sampled_from(SKUS), max_size=1),
    "categories": st.lists(st.sampled_from(["C1", "C11", "C2"]), max_size=2),
    "exclude_categories": st.lists(st.sampled_from(["C111", "C2"]), max_size=1)})
baskets = st.lists(st.builds(lambda sku, q, fen: Line(sku, CATEGORY[sku], q, fen), st.sampled_from(SKUS),
                             st.integers(1, 5), st.integers(0, 200_000)), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(kinds, scopes, st.integers(0, 100_000), baskets)
def test_a_discount_never_exceeds_what_it_may_touch(template: Any, scope: dict[str, list[str]], min_spend: int,
                                                   lines: list[Line]) -> None:
    template.scope, template.min_spend_fen = scope, min_spend
    result = run(template, *lines)
    if not result.applicable:
        return
    assert 0 <= result.discount_fen <= max(result.eligible_fen, max(line.amount_fen for line in lines))
    assert sum(result.allocations) == result.discount_fen
    for line, share in zip(lines, result.allocations, strict=True):
        assert 0 <= share <= line.amount_fen
        if share and template.kind != "free_gift":
            assert rules.in_scope(scope, line, TREE)  # nothing comes off a line outside the scope
    if template.kind != "free_gift":
        assert result.discount_fen <= result.eligible_fen
        assert result.eligible_fen >= max(min_spend, template.threshold_fen or 0)
