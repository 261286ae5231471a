"""Customer KPIs: the cohort retention matrix and the RFM distribution, as pure Ibis.

**Cohort retention.** A customer's cohort is the local month of its first order ever (any of its
profiles, any order, refunded or not; guests have no cohort). For each cohort month from
``from_month`` to ``to_month``, the matrix gives the cohort's size and, for each month since (0, 1, 2
… up to ``to_month``), how many of its customers ordered in that month and which share of the cohort
that is. Month 0 is the whole cohort by definition. Example: 10 customers first bought in January, 4
of them bought again in February and 5 in March (some in both): the January row is 10 customers,
retained [10, 4, 5], rates [1.0, 0.4, 0.5].

One query, one pass over the merchant's orders up to the range's end, grouped by customer: its first
order (a customer whose first order was before ``from_month`` is in no cohort here) and the months of
the range it ordered in, as the bits of an integer (``bit_or`` of one bit per order; the matrix's 36
months at most, periods.MAX_MONTHS, fit in 64 bits). Those rows are then counted per cohort and month
pattern, a few thousand rows that Python spreads into the matrix. Grouping by customer once is what
keeps a year of a large merchant's cohorts within the console's second: the distinct (customer, month)
pairs it replaces took three times as long.

**RFM distribution.** The traits job (audience) writes ``customer_traits`` with each customer's RFM
group; this counts customers per group, with the group's money and average recency and frequency.
It is a snapshot as of the job's ``computed_at``, not a range.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import ibis

from lianjie.analytics import periods
from lianjie.analytics.periods import Range
from lianjie.analytics.sales import number, orders_in
from lianjie.analytics.schemas import CohortRow, Rfm, RfmGroup


def cohorts(con: Any, tenant_id: int, rng: Range) -> list[CohortRow]:
    """The retention matrix for cohorts ``rng.first``'s month to ``rng.last``'s (whole local months)."""
    first_month, last = periods.month_index(rng.first), periods.month_index(rng.last)
    every = orders_in(con, tenant_id, None, rng.end)
    every = every.filter(every.customer_id.notnull())
    day = periods.local_day(con, every.ordered_at, rng)  # read only for orders inside the range
    bit = ibis.ifelse(every.ordered_at >= rng.start, periods.month_bits(day, rng), 0)
    per = every.group_by("customer_id").agg(first_at=every.ordered_at.min(), months=bit.bit_or())
    per = per.filter(per.first_at >= rng.start)
    per = per.select("months", cohort=periods.local_month(con, per.first_at, rng))
    patterns = per.group_by(["cohort", "months"]).agg(customers=per.count())
    counts: Counter[tuple[int, int]] = Counter()
    for r in patterns.to_pyarrow().to_pylist():
        for k in range(last - first_month + 1):
            if number(r["months"]) >> k & 1:
                counts[r["cohort"], first_month + k] += number(r["customers"])
    rows = []
    for cohort in range(first_month, last + 1):
        size = counts.get((cohort, cohort), 0)
        retained = [counts.get((cohort, month), 0) for month in range(cohort, last + 1)]
        rows.append(CohortRow(cohort=f"{periods.month_of(cohort):%Y-%m}", customers=size, retained=retained,
                              rates=[round(n / size, 4) if size else 0.0 for n in retained]))
    return rows


def rfm(con: Any, tenant_id: int) -> Rfm:
    """Customers per RFM group from the latest ``customer_traits``, biggest group first."""
    traits = con.table("customer_traits")
    # Integer columns only, and sums rather than means: the table's float columns (CLV) are not needed,
    # and the averages are exact divisions done here.
    traits = traits.select("tenant_id", "rfm_group", "monetary_fen", "recency_days", "frequency", "computed_at")
    traits = traits.filter(traits.tenant_id == tenant_id)
    table = traits.group_by("rfm_group").agg(
        customers=traits.count(), monetary=traits.monetary_fen.sum(), recency=traits.recency_days.sum(),
        with_recency=traits.recency_days.count(), frequency=traits.frequency.sum(),
        with_frequency=traits.frequency.count(), computed_at=traits.computed_at.max())
    found = table.to_pyarrow().to_pylist()
    total = sum(number(r["customers"]) for r in found)
    groups = [RfmGroup(rfm_group=r["rfm_group"], customers=number(r["customers"]),
                       share=round(number(r["customers"]) / total, 4), monetary_fen=number(r["monetary"]),
                       avg_recency_days=_average(r["recency"], r["with_recency"]),
                       avg_frequency=_average(r["frequency"], r["with_frequency"]))
              for r in found]
    stamps = [r["computed_at"] for r in found if r["computed_at"] is not None]
    return Rfm(computed_at=max(stamps) if stamps else None, customers=total,
               groups=sorted(groups, key=lambda g: (-g.customers, g.rfm_group or "")))


def _average(total: Any, count: Any) -> float | None:
    return round(number(total) / number(count), 2) if number(count) else None
