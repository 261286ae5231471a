"""The SQL each example rule compiles to, compared with the files committed in ``sql/``.

A change of the compiler's shape shows up as a diff of these files in review (performance lives in
that shape: semi-joins and grouped subqueries, never per-customer work). After a deliberate change,
regenerate them with ``LIANJIE_UPDATE_SNAPSHOTS=1 pytest tests/audience/segments/test_sql_snapshots.py``
and read the diff. The SQL is fixed by (rule, merchant, as-of moment, time zone): no clock, no data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import pytest

from lianjie.audience.segments import compiler, rules, service
from tests.audience.segments.world import AS_OF, ZONE

HERE = Path(__file__).parent / "sql"
UPDATE = os.environ.get("LIANJIE_UPDATE_SNAPSHOTS") == "1"

EXAMPLES: dict[str, Any] = {
    "profile_trait": {"trait": "traits.city", "op": "=", "value": "杭州"},
    "computed_trait": {"trait": "rfm_group", "op": "in", "value": ["champions", "loyal"]},
    "timestamp_trait": {"trait": "last_order_at", "op": ">=", "value": "2026-10-01"},
    "tier": {"trait": "tier", "op": "=", "value": "gold"},
    "points_below": {"trait": "points", "op": "<", "value": 100},
    "paid_plan": {"trait": "paid_plan", "op": "is_set"},
    "tag": {"tag": ["vip", "svip"]},
    "did_at_least": {"did": "Product Viewed", "where": [{"property": "category", "op": "=", "value": "跑鞋"}],
                     "at_least": 3, "within_days": 30},
    "did_never": {"did": "Store Visited", "at_least": 0, "at_most": 0, "within_days": 90},
    "purchased_category": {"purchased": {"category": "C01"}, "within_days": 90},
    "purchased_amount_city": {"purchased": {"city": "上海", "store": ["SH001", "SH002"]}, "measure": "amount_fen",
                              "at_least": 100000, "between_dates": ["2026-01-01", "2026-03-31"]},
    "nested": {"all": [{"any": [{"trait": "traits.city", "op": "=", "value": "杭州"}, {"tag": "staff"}]},
                       {"not": {"trait": "points", "op": ">=", "value": 1000}}]},
}


def compiled(raw: Any) -> str:
    scope = compiler.Scope(1, AS_OF, ZoneInfo(ZONE), service.declared_table)
    return str(ibis.to_sql(compiler.count(rules.parse(raw), scope), dialect="duckdb")).strip() + "\n"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_sql_matches_the_snapshot(name: str) -> None:
    sql = compiled(EXAMPLES[name])
    path = HERE / f"{name}.sql"
    if UPDATE or not path.exists():
        path.write_text(sql, encoding="utf-8")
        if not UPDATE:
            pytest.fail(f"{path} did not exist; written now, commit it")
    assert sql == path.read_text(encoding="utf-8")


def test_snapshot_files_are_all_in_use() -> None:
    assert {p.stem for p in HERE.glob("*.sql")} == set(EXAMPLES)
