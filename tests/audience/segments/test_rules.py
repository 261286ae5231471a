"""A malformed rule is a 400 naming the JSON path of the problem; random JSON never gets further
than that (no 5xx, no crash in the compiler)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lianjie.audience.segments import compiler, rules
from lianjie.errors import BadRequest
from tests.audience.segments.world import ROWS
from tests.warehouse_backends import BACKENDS, fill, open_backend

GOOD = {"trait": "rfm_group", "op": "=", "value": "champions"}


@pytest.mark.parametrize(("raw", "path", "words"), [
    ({"all": [GOOD, GOOD, {"any": [{"trait": "tier", "op": "~", "value": "x"}]}]}, "rule.all[2].any[0].op", "Input"),
    ({"all": [GOOD, {"nope": 1}]}, "rule.all[1]", "one of the keys"),
    ([GOOD], "rule", "one of the keys"),
    ({"not": {"trait": "ltv", "op": "=", "value": 1}}, "rule.not.trait", "unknown trait"),
    ({"trait": "points", "op": ">=", "value": "many"}, "rule.value", "int"),
    ({"trait": "traits.city", "op": "in", "value": []}, "rule.value", "non-empty list"),
    ({"trait": "traits.city", "op": "in", "value": ["a", 1]}, "rule.value", "one type"),
    ({"trait": "traits.age", "op": "between", "value": [1]}, "rule.value", "[low, high]"),
    ({"trait": "traits.city", "op": "is_set", "value": "x"}, "rule.value", "no value"),
    ({"trait": "monetary_fen", "op": "contains", "value": "1"}, "rule.value", "int"),
    ({"trait": "last_order_at", "op": ">", "value": "yesterday"}, "rule.value", "timestamp"),
    ({"trait": "traits.", "op": "is_set"}, "rule.trait", "traits.<name>"),
    ({"any": []}, "rule.any", "at least 1"),
    ({"did": "X", "at_least": 3, "at_most": 2}, "rule.at_most", "below at_least"),
    ({"did": "X", "within_days": 7, "between_dates": ["2026-01-01", "2026-01-02"]}, "rule.between_dates", "not both"),
    ({"did": "X", "between_dates": ["2026-02-01", "2026-01-01"]}, "rule.between_dates", "after"),
    ({"did": "X", "where": [{"property": "p", "op": "<", "value": True}]}, "rule.where[0].value", "booleans"),
    ({"purchased": {"category": []}}, "rule.purchased.category", "at least one"),
    ({"purchased": {"colour": "red"}}, "rule.purchased.colour", "Extra inputs"),
    ({"purchased": {}, "measure": "profit"}, "rule.measure", "Input should be"),
    ({"tag": []}, "rule.tag", "at least one"),
])
def test_a_malformed_rule_names_its_json_path(raw: Any, path: str, words: str) -> None:
    with pytest.raises(BadRequest) as caught:
        rules.parse(raw)
    assert (caught.value.status_code, caught.value.code, caught.value.field) == (400, "invalid_rule", path)
    assert words in caught.value.message


def test_nesting_and_size_are_bounded() -> None:
    deep: Any = GOOD
    for _ in range(rules.MAX_DEPTH + 1):
        deep = {"not": deep}
    with pytest.raises(BadRequest, match="levels"):
        rules.parse(deep)
    hostile: Any = 1
    for _ in range(5000):  # deeper than Python's recursion limit
        hostile = [hostile]
    with pytest.raises(BadRequest):
        rules.parse(hostile)


def test_a_parsed_rule_dumps_back_to_the_same_json() -> None:
    raw = {"all": [{"not": {"tag": "vip"}}, {"did": "Product Viewed", "at_least": 2, "within_days": 7},
                   {"purchased": {"city": "上海"}, "between_dates": ["2026-01-01", "2026-01-31"]}]}
    assert rules.dump(rules.parse(raw)) == raw


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                    st.text(max_size=8), st.sampled_from(["=", "in", "between", "is_set", "contains", "rfm_group",
                                                          "traits.city", "points", "2026-01-01"]))
KEYS = st.sampled_from([*rules.KINDS, "op", "value", "where", "property", "at_least", "at_most", "within_days",
                        "between_dates", "measure", "sku", "category", "city", "x"])
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
                    max_leaves=20)


@pytest.fixture(scope="module")
def filled() -> Iterator[Any]:
    """One warehouse for every example (hypothesis reruns the test body, not function fixtures)."""
    with open_backend(BACKENDS[0]) as con:
        fill(con, ROWS)
        yield con


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(raw=JSON)
def test_random_json_is_a_400_or_a_rule_that_runs(filled: Any, raw: Any) -> None:
    problem: BadRequest | None = None
    try:
        rule = rules.parse(raw)
    except BadRequest as error:
        problem = error
    event("refused" if problem is not None else "ran")
    if problem is not None:
        assert (problem.status_code, (problem.field or "").split(".")[0].split("[")[0]) == (400, "rule")
        return
    scope = compiler.Scope(1, dt.datetime(2026, 11, 1, tzinfo=dt.UTC), ZoneInfo("Asia/Shanghai"), filled.table)
    assert filled.execute(compiler.count(rule, scope)) >= 0


@pytest.mark.parametrize(("raw", "path"), [
    ({"trait": "points", "op": ">", "value": 10**20}, "rule.value"),
    ({"trait": "traits.age", "op": "<", "value": float("nan")}, "rule.value"),
    ({"did": "X", "where": [{"property": "n", "op": "=", "value": float("inf")}]}, "rule.where[0].value"),
    ({"did": "X", "between_dates": ["2026-01-01", "9999-12-31"]}, "rule.between_dates"),
    ({"trait": "last_order_at", "op": "<", "value": "0001-01-01"}, "rule.value"),
])
def test_values_a_warehouse_could_not_compare_are_refused(raw: Any, path: str) -> None:
    """Each would otherwise overflow in the compiler or the warehouse: a 500 instead of a 400."""
    with pytest.raises(BadRequest) as caught:
        rules.parse(raw)
    assert caught.value.field == path
