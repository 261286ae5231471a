"""Response shapes of the KPI API: money in integer fen, dates local to the merchant, rates 0..1."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class Figures(BaseModel):
    """The headline figures of one range (definitions in lianjie.analytics.sales)."""

    orders: int = Field(description="Sales placed in the range, refunded or not (a refund is not an order).")
    refunded_orders: int = Field(description="Of those, orders refunded in full since.")
    guest_orders: int = Field(description="Orders without an identified buyer.")
    gross_fen: int = Field(description="GMV: what the buyers paid for those orders, before refunds.")
    refunded_fen: int = Field(description="What has been refunded of those orders so far.")
    net_fen: int = Field(description="GMV net of refunds: gross_fen - refunded_fen.")
    aov_fen: int | None = Field(description="Average order value: gross_fen / orders, rounded half up.")
    buyers: int = Field(description="Distinct customers (OneID) with an order; guests are not counted.")
    repeat_buyers: int = Field(description="Buyers with two or more orders in the range.")
    repurchase_rate: float | None = Field(description="repeat_buyers / buyers.")
    member_buyers: int = Field(description="Buyers who are members by the range's end.")
    member_net_fen: int = Field(description="Net GMV of member buyers' orders in the range.")
    member_share: float | None = Field(description="member_net_fen / net_fen.")
    members: int = Field(description="Customers who are members at the range's end (the member base).")
    new_members: int = Field(description="Customers who became members in the range.")


class Ranged(BaseModel):
    """A response about local dates ``from`` to ``to`` (both included) in the merchant's ``timezone``."""

    model_config = ConfigDict(populate_by_name=True)

    from_: dt.date = Field(alias="from")
    to: dt.date
    timezone: str


class Overview(Ranged):
    currency: str
    current: Figures
    previous: Figures = Field(description="The same figures for as many days just before the range.")
    previous_from: dt.date
    previous_to: dt.date
    change: dict[str, float | None] = Field(
        description="(current - previous) / previous per figure; null where the previous figure is 0.")


class BreakdownRow(BaseModel):
    key: int | str | None = Field(description="store id, guide (staff) id or channel; null: orders without one.")
    code: str | None = Field(description="store code or staff number")
    name: str | None
    orders: int
    gross_fen: int
    refunded_fen: int
    net_fen: int
    aov_fen: int | None
    buyers: int = Field(description="Distinct customers in this row (one customer may be in several rows).")
    member_net_fen: int
    member_share: float | None
    share_of_net: float | None = Field(description="This row's net_fen / all rows' net_fen.")


class Breakdown(Ranged):
    by: str
    rows: list[BreakdownRow]


class TrendPoint(BaseModel):
    start: dt.date = Field(description="The bucket's first local day (a Monday for weeks).")
    orders: int
    gross_fen: int
    refunded_fen: int
    net_fen: int
    buyers: int


class Trend(Ranged):
    grain: str
    points: list[TrendPoint]


class CohortRow(BaseModel):
    cohort: str = Field(description="The local month of the customers' first order, YYYY-MM.")
    customers: int
    retained: list[int] = Field(description="Per month since the first (0, 1, 2 …): customers who bought then.")
    rates: list[float] = Field(description="retained / customers; month 0 is 1.0.")


class Cohorts(BaseModel):
    from_month: str
    to_month: str
    timezone: str
    rows: list[CohortRow]


class RfmGroup(BaseModel):
    rfm_group: str | None
    customers: int
    share: float
    monetary_fen: int = Field(description="The group's customers' monetary_fen added up.")
    avg_recency_days: float | None
    avg_frequency: float | None


class Rfm(BaseModel):
    computed_at: dt.datetime | None = Field(description="When the traits job computed these (null: never).")
    customers: int
    groups: list[RfmGroup]
