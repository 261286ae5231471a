"""Rules find exactly the customers worked out by hand (world.py), on every warehouse backend."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import ibis

from lianjie.audience.segments import compiler, rules
from tests.audience.segments.world import AS_OF, CASES, EVERYONE, ROWS, ZONE
from tests.warehouse_backends import fill


def test_every_clause_finds_the_customers_counted_by_hand(warehouse: Any) -> None:
    fill(warehouse, ROWS)
    scope = compiler.Scope(1, AS_OF, ZoneInfo(ZONE), warehouse.table, warehouse.name)
    found: dict[int, set[int]] = {i: set() for i in range(len(CASES))}
    # One query for every case (a backend like Spark pays per query, not per subquery).
    labelled = [compiler.members(rules.parse(raw), scope).mutate(case=ibis.literal(i, type="int64"))
                for i, (raw, _) in enumerate(CASES)]
    for row in ibis.union(*labelled).to_pyarrow().to_pylist():
        found[row["case"]].add(row["customer_id"])
    wrong = {str(raw): (sorted(found[i]), sorted(expected)) for i, (raw, expected) in enumerate(CASES)
             if found[i] != expected}
    assert wrong == {}


def test_count_is_one_query_that_agrees_and_everyone_is_the_universe(warehouse: Any) -> None:
    fill(warehouse, ROWS)
    scope = compiler.Scope(1, AS_OF, ZoneInfo(ZONE), warehouse.table, warehouse.name)
    everyone = compiler.members(rules.parse({"not": {"tag": "no-such-tag-at-all"}}), scope)
    assert set(everyone.to_pyarrow().column("customer_id").to_pylist()) == EVERYONE  # 40 erased, 90 elsewhere
    assert compiler.count(rules.parse({"trait": "points", "op": "<", "value": 100}), scope).execute() == 3
    other = compiler.Scope(2, AS_OF, ZoneInfo(ZONE), warehouse.table, warehouse.name)
    assert compiler.count(rules.parse({"tag": "vip"}), other).execute() == 1
