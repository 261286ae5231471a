"""The arithmetic of a coupon on a basket, and why a coupon cannot apply: no database, no clock.

The discount is computed on the *eligible* part of the basket only (the lines in scope), never
exceeds it, and is spread over those lines in proportion to their amounts (commerce's
:func:`~lianjie.commerce.orders.allocate`, the rule orders use for order-level discounts). Examples
on an eligible amount of 45,000 fen:

- amount off 5,000 → 5,000 (on 3,000 eligible: 3,000, never more than the goods);
- 15% off, capped at 5,000 → 45,000 × 15 // 100 = 6,750, capped → 5,000 (rounded down to the fen);
- 满200减30 (threshold 20,000, 3,000) → 3,000; 每满200减30 → 45,000 // 20,000 = 2 times → 6,000;
- free gift of SKU G → one unit of G's line (its amount // quantity) if the basket holds it; otherwise
  the coupon applies with 0 off and tells the till which SKU to add.

``min_spend_fen`` (any kind) and the 满减 threshold are compared with the eligible amount; for a
free gift the gift's own line does not count towards it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lianjie.commerce.orders import allocate
from lianjie.loyalty.coupons.models import CouponKind


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    category_code: str | None
    quantity: int
    amount_fen: int


@dataclass(frozen=True, slots=True)
class Basket:
    lines: tuple[Line, ...]
    store_code: str | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    message: str
    message_zh: str


@dataclass(slots=True)
class Evaluation:
    discount_fen: int = 0
    eligible_fen: int = 0
    allocations: list[int] = field(default_factory=list)  # per basket line
    gift_sku: str | None = None
    gift_in_basket: bool = False
    reasons: list[Reason] = field(default_factory=list)

    @property
    def applicable(self) -> bool:
        return not self.reasons


def _yuan(fen: int) -> str:
    return f"¥{fen / 100:,.2f}"


def _scope_reasons(scope: dict[str, Any], basket: Basket) -> list[Reason]:
    reasons = []
    stores = scope.get("stores") or []
    if stores and basket.store_code not in stores:
        where = f"store {basket.store_code}" if basket.store_code else "a sale without a store"
        reasons.append(Reason("coupon_wrong_store", f"not valid in {where}; valid in {', '.join(stores)}",
                              f"本券仅限门店 {', '.join(stores)} 使用"))
    channels = scope.get("channels") or []
    if channels and basket.channel not in channels:
        reasons.append(Reason("coupon_wrong_channel", f"not valid on channel {basket.channel or '(none given)'}; "
                              f"valid on {', '.join(channels)}", f"本券仅限渠道 {', '.join(channels)} 使用"))
    return reasons


def in_scope(scope: dict[str, Any], line: Line, ancestry: Callable[[str | None], frozenset[str]]) -> bool:
    """Whether a line counts: not excluded by SKU or category, and included by SKU or category if the
    scope names any. ``ancestry`` gives a category code and all its parents'."""
    if line.sku in (scope.get("exclude_skus") or ()):
        return False
    categories = ancestry(line.category_code)
    if categories.intersection(scope.get("exclude_categories") or ()):
        return False
    skus, included = scope.get("skus") or (), scope.get("categories") or ()
    if not skus and not included:
        return True
    return line.sku in skus or bool(categories.intersection(included))


def evaluate(template: Any, basket: Basket, ancestry: Callable[[str | None], frozenset[str]]) -> Evaluation:
    """The coupon ``template`` (a CouponTemplate) applied to ``basket``: discount, allocation, or reasons."""
    result = Evaluation(allocations=[0] * len(basket.lines))
    scope = template.scope or {}
    result.reasons.extend(_scope_reasons(scope, basket))
    kind = CouponKind(template.kind)
    weights = [line.amount_fen if in_scope(scope, line, ancestry) else 0 for line in basket.lines]
    gift_line: int | None = None
    if kind is CouponKind.FREE_GIFT:
        result.gift_sku = template.gift_sku
        gift_line = next((i for i, line in enumerate(basket.lines) if line.sku == template.gift_sku), None)
        result.gift_in_basket = gift_line is not None
        if gift_line is not None:
            weights[gift_line] = 0  # the gift does not count towards the spend it rewards
    eligible = result.eligible_fen = sum(weights)
    restricted = bool(scope.get("skus") or scope.get("categories"))
    if eligible == 0 and (kind is not CouponKind.FREE_GIFT or restricted):
        result.reasons.append(Reason("coupon_no_eligible_items", "no line of the basket is in the coupon's scope",
                                     "购物车中没有适用本券的商品"))
        return result
    least = max(template.min_spend_fen or 0, template.threshold_fen or 0)
    if eligible < least:
        result.reasons.append(Reason(
            "coupon_below_minimum_spend", f"needs {_yuan(least)} of eligible goods, the basket has {_yuan(eligible)}",
            f"适用商品满 {_yuan(least)} 可用，当前 {_yuan(eligible)}，还差 {_yuan(least - eligible)}"))
    if result.reasons:
        return result
    if kind is CouponKind.FREE_GIFT:
        if gift_line is not None:
            line = basket.lines[gift_line]
            result.discount_fen = line.amount_fen // line.quantity
            result.allocations[gift_line] = result.discount_fen
        return result
    discount = _discount(kind, template, eligible)
    result.discount_fen = discount
    result.allocations = allocate(discount, weights)
    return result


def _discount(kind: CouponKind, template: Any, eligible: int) -> int:
    if kind is CouponKind.AMOUNT_OFF:
        amount = int(template.amount_off_fen)
    elif kind is CouponKind.PERCENT_OFF:
        amount = eligible * int(template.percent_off) // 100
    else:  # spend_save
        times = eligible // int(template.threshold_fen) if template.per_threshold else 1
        amount = int(template.amount_off_fen) * times
    if template.max_discount_fen is not None:
        amount = min(amount, int(template.max_discount_fen))
    return min(amount, eligible)


def validity_reasons(valid_from: dt.datetime, valid_until: dt.datetime | None, at: dt.datetime,
                     zone: Any) -> list[Reason]:
    """Whether ``at`` falls in ``[valid_from, valid_until)``; times are shown in the merchant's zone."""
    if at < valid_from:
        local = valid_from.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        return [Reason("coupon_not_yet_valid", f"valid from {local}", f"本券 {local} 起可用")]
    if valid_until is not None and at >= valid_until:
        local = valid_until.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        return [Reason("coupon_expired", f"expired at {local}", f"本券已于 {local} 过期")]
    return []


def ancestry_from(parents: dict[str, str | None]) -> Callable[[str | None], frozenset[str]]:
    """An ``ancestry`` function over a merchant's category tree given as ``{code: parent_code}``."""
    memo: dict[str | None, frozenset[str]] = {None: frozenset()}

    def ancestry(code: str | None) -> frozenset[str]:
        if code not in memo:
            chain, node, seen = [], code, 0
            while node is not None and seen < 10:  # the catalogue nests 5 levels; a loop cannot hang us
                chain.append(node)
                node, seen = parents.get(node), seen + 1
            memo[code] = frozenset(chain)
        return memo[code]

    return ancestry


def lines_of(raw: Sequence[Any], categories: dict[str, str | None]) -> tuple[Line, ...]:
    """Basket lines, each with its category from the request or else from the catalogue (``categories``)."""
    return tuple(Line(x.sku, x.category_code or categories.get(x.sku), x.quantity, x.amount_fen) for x in raw)
