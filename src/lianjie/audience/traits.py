"""Customer traits: RFM scores and groups, lifecycle stage and CLV, computed in the warehouse.

Everything up to the per-customer table is one Ibis expression over ``orders`` and ``identity_map``
(so it runs on DuckDB and PySpark alike); only the CLV models are fitted in Python (clv.py) on the
per-customer (x, t_x, T) that expression returns. The rules:

* **Customers** are the merchant's root profiles in ``identity_map`` (``customer_id``), with the
  orders of every profile merged into them. A guest order with no profile belongs to nobody. A
  customer whose root profile is erased (PIPL) gets no traits: traits are profiling of a person.
* **A purchase** is an order placed up to the as-of time whose status is not ``refunded`` and whose
  net amount ``paid_fen - refunded_fen`` is above 0, counted at that net amount. A fully refunded
  order is no purchase; a free order (paid 0) is none either (RFM and CLV measure paid custom).
* **Days** are the merchant's local calendar days: the as-of time and each order time are shifted by
  the zone's UTC offset at the as-of time (exact for China, which keeps no daylight saving time;
  elsewhere an order within an hour of midnight may land on the neighbouring day).
* **RFM**: ``recency_days`` = as-of day minus the last purchase day (0 if bought today), over all
  history; ``frequency`` = purchases and ``monetary_fen`` = their net amount within the window (the
  last ``rfm_window_days`` local days, today included), so an old customer may have 0 and 0. Scores
  rank the merchant's buyers: ``score = 1 + floor(5 x worse / buyers)``, where ``worse`` counts the
  buyers strictly worse on that measure (longer ago, fewer purchases, less spend). Ties share a
  score, 5 is best. Example: 10 buyers with frequencies 1..10 score 1,1,2,2,3,3,4,4,5,5; if all 10
  bought once, all score 1.
* **RFM group**: each of R, F, M is *high* when the customer's score is at least the mean score of
  the merchant's buyers (scores, not raw values, so one big spender does not make everybody "low").
  The eight groups are the classic Chinese model, from 重要价值客户 (R, F and M high) to 一般挽留客户
  (all low); see ``GROUPS``.
* **Lifecycle**, first rule that applies: ``prospect`` (no purchase); ``lapsed`` (recency above
  ``lapsed_days``); ``reactivated`` (the gap between the last two purchase days was above
  ``lapsed_days``, and the last purchase is at most ``reactivated_days`` ago); ``new`` (first
  purchase fewer than ``new_days`` days ago); ``at_risk`` (recency above ``at_risk_days``);
  ``active``. Thresholds are the operator's, or derived each run (:func:`derive_thresholds`).
* **CLV** (clv.py): per merchant, BG/NBD and Gamma-Gamma on every buyer's whole history up to the
  as-of day (purchase days, as clv.summarise counts them); the expected purchases and value in the
  next ``clv_horizon_days``. Null for every customer when the merchant has fewer than
  ``MIN_REPEAT_BUYERS`` buyers with a repeat purchase, and the value is null when the fitted spend
  model has no finite mean (q <= 1).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from ibis import _

from lianjie.audience import clv
from lianjie.audience.labels import GROUP_OF
from lianjie.audience.settings import AudienceSettings
from lianjie.warehouse.tables import CUSTOMER_TRAITS, CUSTOMER_TRAITS_SCHEMA

SECONDS_PER_DAY = 86_400
MIN_REPEAT_BUYERS = 10  # fewer buyers with a repeat purchase than this: no CLV fit
MIN_GAPS = 10  # fewer inter-purchase gaps than this: the fallback thresholds instead of derived ones
FALLBACK_AT_RISK_DAYS, FALLBACK_LAPSED_DAYS = 90, 180
LAPSED_PERCENTILE = 0.9

@dataclass(frozen=True)
class Thresholds:
    at_risk_days: int
    lapsed_days: int
    source: str  # "settings", "derived" or "fallback" (too few gaps to derive)
    gaps: int = 0


@dataclass
class MerchantTraits:
    """One merchant's run: its rows (in the CUSTOMER_TRAITS_SCHEMA layout) and how they were made."""

    tenant_id: int
    rows: pa.Table
    thresholds: Thresholds
    repeat_buyers: int
    clv: dict[str, Any] | None = None  # fitted parameters, or None when not fitted
    counts: dict[str, int] = field(default_factory=dict)
    slug: str = ""

    def summary(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "slug": self.slug, "customers": self.rows.num_rows, "stages": self.counts,
                "thresholds": {"at_risk_days": self.thresholds.at_risk_days,
                               "lapsed_days": self.thresholds.lapsed_days, "source": self.thresholds.source},
                "repeat_buyers": self.repeat_buyers, "clv": self.clv}


# ---- the Ibis expressions ------------------------------------------------------------------------


def _offset_seconds(timezone: str, as_of: dt.datetime) -> int:
    offset = as_of.astimezone(ZoneInfo(timezone)).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def purchase_days(con: Any, tenant_id: int, as_of: dt.datetime, timezone: str) -> ibis.Table:
    """One row per customer and local purchase day: net fen, purchases, first and last order time,
    and the gap in days since the customer's previous purchase day (null on the first)."""
    offset = _offset_seconds(timezone, as_of)
    orders, idmap = con.table("orders"), con.table("identity_map")
    mine = idmap.filter(idmap.tenant_id == tenant_id)
    roots = mine.filter(mine.profile_id == mine.customer_id, ~mine.erased.fill_null(False))
    owners = mine.semi_join(roots.select("customer_id"), "customer_id")
    orders = orders.filter(orders.tenant_id == tenant_id).mutate(
        net_fen=orders.paid_fen - orders.refunded_fen.fill_null(0),
        epoch=orders.ordered_at.epoch_seconds().cast("int64"))
    bought = orders.filter(orders.status != "refunded", orders.net_fen > 0, orders.epoch <= int(as_of.timestamp()))
    bought = bought.join(owners, bought.profile_id == owners.profile_id).select(
        customer_id=owners.customer_id, ordered_at=bought.ordered_at, net_fen=bought.net_fen,
        day=(bought.epoch + offset) // SECONDS_PER_DAY)
    days = bought.group_by(["customer_id", "day"]).aggregate(
        net_fen=_.net_fen.sum(), orders=_.count(), first_at=_.ordered_at.min(), last_at=_.ordered_at.max())
    by_customer = ibis.window(group_by=days.customer_id, order_by=days.day)
    return days.mutate(gap=days.day - days.day.lag().over(by_customer),
                       first_day=days.day.min().over(group_by=days.customer_id),
                       last_day=days.day.max().over(group_by=days.customer_id))


def local_day(as_of: dt.datetime, timezone: str) -> int:
    """The as-of time's local day number (days since 1970-01-01 in the merchant's zone)."""
    return (int(as_of.timestamp()) + _offset_seconds(timezone, as_of)) // SECONDS_PER_DAY


def derive_thresholds(days: ibis.Table, settings: AudienceSettings) -> Thresholds:
    """The operator's thresholds, or ones derived from the merchant's own inter-purchase gaps.

    Derived: ``at_risk_days`` = the median gap x ``at_risk_factor`` (rounded up); ``lapsed_days`` =
    the 90th percentile gap, and at least one day more than at_risk. Percentiles are nearest-rank
    over every gap between consecutive purchase days of every customer. Example: gaps 10, 20, 30,
    40, 50, 60, 70, 80, 90, 300 give median 50 (the 5th of 10), at_risk 100 with factor 2, and
    90th percentile 90 (the 9th), so lapsed = 101. With fewer than ``MIN_GAPS`` gaps there is too
    little to go on and the fallback 90 / 180 days apply.
    """
    life = settings.lifecycle
    if life.at_risk_days is not None and life.lapsed_days is not None:
        return Thresholds(life.at_risk_days, life.lapsed_days, "settings")
    counts = days.filter(days.gap.notnull()).group_by("gap").aggregate(n=_.count()).to_pyarrow()
    order = np.argsort(np.asarray(counts["gap"], dtype=np.int64))
    gaps = np.asarray(counts["gap"], dtype=np.int64)[order]
    cumulative = np.cumsum(np.asarray(counts["n"], dtype=np.int64)[order])
    total = int(cumulative[-1]) if len(cumulative) else 0
    if total < MIN_GAPS:
        return Thresholds(FALLBACK_AT_RISK_DAYS, FALLBACK_LAPSED_DAYS, "fallback", total)

    def percentile(p: float) -> int:
        return int(gaps[int(np.searchsorted(cumulative, math.ceil(p * total)))])

    at_risk = max(1, math.ceil(percentile(0.5) * life.at_risk_factor))
    return Thresholds(at_risk, max(at_risk + 1, percentile(LAPSED_PERCENTILE)), "derived", total)


def traits_table(con: Any, tenant_id: int, days: ibis.Table, today: int, settings: AudienceSettings,
                 thresholds: Thresholds) -> ibis.Table:
    """Every customer of the merchant with RFM, stage and the (x, t_x, T) CLV inputs, as one expression."""
    start = today - settings.rfm_window_days + 1
    in_window = days.day >= start
    buyers = days.group_by("customer_id").aggregate(
        first_day=days.day.min(), last_day=days.day.max(), purchase_days=days.count(),
        total_fen=days.net_fen.sum(), first_day_fen=days.net_fen.sum(where=days.day == days.first_day),
        last_gap=days.gap.max(where=days.day == days.last_day),
        frequency=days.orders.sum(where=in_window), monetary_fen=days.net_fen.sum(where=in_window),
        first_order_at=days.first_at.min(), last_order_at=days.last_at.max())
    buyers = buyers.mutate(recency_days=today - buyers.last_day, frequency=buyers.frequency.fill_null(0).cast("int64"),
                           monetary_fen=buyers.monetary_fen.fill_null(0).cast("int64"))
    buyers = buyers.mutate(
        n=_.customer_id.count(),
        r_worse=ibis.rank().over(order_by=ibis.desc(buyers.recency_days)),
        f_worse=ibis.rank().over(order_by=buyers.frequency),
        m_worse=ibis.rank().over(order_by=buyers.monetary_fen))
    buyers = buyers.mutate(**{f"{k}_score": (1 + (5 * buyers[f"{k}_worse"]) // buyers.n).cast("int64")
                              for k in "rfm"})
    buyers = buyers.mutate(**{f"{k}_high": buyers[f"{k}_score"] >= buyers[f"{k}_score"].mean() for k in "rfm"})
    group = ibis.cases(*(((buyers.r_high == r) & (buyers.f_high == f) & (buyers.m_high == m), code)
                         for (r, f, m), code in GROUP_OF.items()))
    life = settings.lifecycle
    stage = ibis.cases(
        (buyers.recency_days > thresholds.lapsed_days, "lapsed"),
        ((buyers.last_gap > thresholds.lapsed_days) & (buyers.recency_days <= life.reactivated_days), "reactivated"),
        (today - buyers.first_day < life.new_days, "new"),
        (buyers.recency_days > thresholds.at_risk_days, "at_risk"),
        else_="active")
    buyers = buyers.mutate(rfm_group=group, lifecycle_stage=stage, x=buyers.purchase_days - 1,
                           tx_days=buyers.last_day - buyers.first_day, T_days=today - buyers.first_day,
                           repeat_fen=buyers.total_fen - buyers.first_day_fen)
    idmap = con.table("identity_map")
    everyone = idmap.filter(idmap.tenant_id == tenant_id, idmap.profile_id == idmap.customer_id,
                            ~idmap.erased.fill_null(False)).select("customer_id")
    joined = everyone.left_join(buyers, everyone.customer_id == buyers.customer_id)
    return joined.select(
        customer_id=everyone.customer_id, first_order_at=buyers.first_order_at, last_order_at=buyers.last_order_at,
        recency_days=buyers.recency_days.cast("int64"), frequency=buyers.frequency, monetary_fen=buyers.monetary_fen,
        r_score=buyers.r_score, f_score=buyers.f_score, m_score=buyers.m_score, rfm_group=buyers.rfm_group,
        lifecycle_stage=buyers.lifecycle_stage.fill_null("prospect"),
        x=buyers.x.cast("int64"), tx_days=buyers.tx_days.cast("int64"), T_days=buyers.T_days.cast("int64"),
        repeat_fen=buyers.repeat_fen.cast("int64"))


# ---- CLV ---------------------------------------------------------------------------------------------


def _clv(rows: pa.Table, horizon_days: int) -> tuple[dict[str, pa.Array], int, dict[str, Any] | None]:
    """p_alive, expected purchases and expected value (fen) per row, from the rows' x, t_x, T and
    repeat spend; all null when the merchant has too few repeat buyers to fit."""
    n = rows.num_rows
    empty = {"clv_p_alive": pa.nulls(n, pa.float64()), "clv_expected_purchases": pa.nulls(n, pa.float64()),
             "clv_expected_value_fen": pa.nulls(n, pa.int64())}
    bought = np.asarray(pc.is_valid(rows["x"]).to_numpy(zero_copy_only=False), dtype=bool)
    x = np.asarray(rows["x"].fill_null(0).to_numpy(), dtype=float)
    repeat_buyers = int(np.sum(x > 0))
    if repeat_buyers < MIN_REPEAT_BUYERS:
        return empty, repeat_buyers, None
    t_x = np.asarray(rows["tx_days"].fill_null(0).to_numpy(), dtype=float)
    T = np.asarray(rows["T_days"].fill_null(0).to_numpy(), dtype=float)
    spend = np.asarray(rows["repeat_fen"].fill_null(0).to_numpy(), dtype=float) / 100  # yuan, as the models are quoted
    triples, counts = np.unique(np.stack([x[bought], t_x[bought], T[bought]], axis=1), axis=0, return_counts=True)
    bgnbd = clv.fit_bgnbd_counts(triples[:, 0], triples[:, 1] / clv.DAYS_PER_WEEK, triples[:, 2] / clv.DAYS_PER_WEEK,
                                 counts.astype(float))
    repeat = x > 0
    gamma = clv.fit_gamma_gamma_arrays(x[repeat], spend[repeat] / x[repeat])
    weeks_x, weeks_T = t_x / clv.DAYS_PER_WEEK, T / clv.DAYS_PER_WEEK
    alive = bgnbd.p_alive(x, weeks_x, weeks_T)
    purchases = bgnbd.expected_purchases(horizon_days / clv.DAYS_PER_WEEK, x, weeks_x, weeks_T)
    fitted: dict[str, Any] = {"bgnbd": {"r": bgnbd.r, "alpha": bgnbd.alpha, "a": bgnbd.a, "b": bgnbd.b},
                              "gamma_gamma": {"p": gamma.p, "q": gamma.q, "gamma": gamma.gamma}}
    out = {"clv_p_alive": _finite(alive, bought), "clv_expected_purchases": _finite(purchases, bought),
           "clv_expected_value_fen": empty["clv_expected_value_fen"]}
    if gamma.q > 1:
        mean_spend = np.divide(spend, x, out=np.zeros_like(spend), where=repeat)
        value = np.rint(purchases * gamma.expected_spend(x, mean_spend) * 100)
        out["clv_expected_value_fen"] = _finite(value, bought).cast(pa.int64())
    return out, repeat_buyers, fitted


def _finite(values: np.ndarray[Any, Any], bought: np.ndarray[Any, Any]) -> pa.Array:
    """The values of buyers, null elsewhere and wherever the models' arithmetic overflowed (a NaN
    would reach the API as JSON it cannot write)."""
    keep = bought & np.isfinite(values)
    return pa.array(np.where(keep, values, 0.0), mask=~keep)


# ---- one merchant, and writing -----------------------------------------------------------------------


def compute_merchant(con: Any, tenant_id: int, timezone: str, settings: AudienceSettings,
                     as_of: dt.datetime) -> MerchantTraits:
    """The merchant's traits as of ``as_of`` (two warehouse queries: the gaps, unless the operator
    set the thresholds, and the per-customer table)."""
    days = purchase_days(con, tenant_id, as_of, timezone)
    thresholds = derive_thresholds(days, settings)
    today = local_day(as_of, timezone)
    rows = traits_table(con, tenant_id, days, today, settings, thresholds).to_pyarrow()
    values, repeat_buyers, fitted = _clv(rows, settings.clv_horizon_days)
    n = rows.num_rows
    columns: dict[str, Any] = {name: rows[name] for name in rows.column_names}
    columns |= values | {"tenant_id": pa.repeat(pa.scalar(tenant_id, pa.int64()), n),
                         "computed_at": pa.repeat(pa.scalar(as_of, pa.timestamp("us", tz="UTC")), n)}
    schema = CUSTOMER_TRAITS_SCHEMA.to_pyarrow()
    table = pa.table({name: columns[name] for name in schema.names}).cast(schema)
    stages = pc.value_counts(table["lifecycle_stage"]).to_pylist()
    return MerchantTraits(tenant_id, table, thresholds, repeat_buyers, fitted,
                          {s["values"]: int(s["counts"]) for s in stages})


def write(con: Any, runs: list[MerchantTraits], *, everyone: bool) -> None:
    """Replace the merchants' rows of the warehouse's ``customer_traits`` (the whole table when
    ``everyone``): other merchants' rows are read out first, then the table is created anew, so no
    statement reads the table it overwrites (PySpark refuses that)."""
    parts = [run.rows for run in runs]
    if not everyone and CUSTOMER_TRAITS in con.list_tables():
        kept = con.table(CUSTOMER_TRAITS)
        parts.insert(0, kept.filter(~kept.tenant_id.isin([r.tenant_id for r in runs])).to_pyarrow())
    schema = CUSTOMER_TRAITS_SCHEMA.to_pyarrow()
    whole = pa.concat_tables([p.cast(schema) for p in parts]) if parts else schema.empty_table()
    con.create_table(CUSTOMER_TRAITS, obj=whole, schema=CUSTOMER_TRAITS_SCHEMA, overwrite=True)
