"""KPI API for the console's charts: headline figures with the previous period, breakdowns per store,
guide and channel, the trend, cohort retention and the RFM distribution.

Dates are the merchant's local dates (its time zone), ``to`` included; a range is at most two years
(731 days), a cohort matrix at most 36 months. A malformed date or a range the wrong way round or too
long is a 400 naming the parameter. Figures are defined in ``lianjie.analytics.sales`` and
``lianjie.analytics.customers``, and read from the warehouse (as of its last sync).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from lianjie.analytics import customers, periods, sales
from lianjie.analytics.periods import Grain
from lianjie.analytics.sales import Dimension
from lianjie.analytics.schemas import Breakdown, Cohorts, Overview, Rfm, Trend
from lianjie.http import DbSession
from lianjie.tenants import service as tenants
from lianjie.tenants.auth import RequireScope
from lianjie.tenants.keys import Caller
from lianjie.warehouse.http import Warehouse

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])
Reader = Annotated[Caller, RequireScope("analytics:read")]
From = Annotated[str, Query(alias="from", description="First local date, YYYY-MM-DD.", examples=["2026-10-01"])]
To = Annotated[str, Query(description="Last local date (included), YYYY-MM-DD.", examples=["2026-10-31"])]


@router.get("/overview", summary="Headline KPIs for a range, and for the range before it")
def overview(from_: From, to: To, session: DbSession, caller: Reader, con: Warehouse) -> Overview:
    merchant = tenants.get_merchant(session, caller.tenant_id)
    rng = periods.parse_range(from_, to, merchant.timezone)
    current, previous = sales.overview(con, caller.tenant_id, rng)
    prev = rng.previous()
    return Overview(from_=rng.first, to=rng.last, timezone=rng.zone, currency=merchant.currency, current=current,
                    previous=previous, previous_from=prev.first, previous_to=prev.last,
                    change=sales.change(current, previous))


@router.get("/breakdown", summary="Sales per store, per shopping guide or per channel")
def breakdown(from_: From, to: To, by: Dimension, session: DbSession, caller: Reader, con: Warehouse) -> Breakdown:
    rng = periods.parse_range(from_, to, tenants.get_merchant(session, caller.tenant_id).timezone)
    return Breakdown(from_=rng.first, to=rng.last, timezone=rng.zone, by=by,
                     rows=sales.breakdown(con, caller.tenant_id, rng, by))


@router.get("/trend", summary="Orders, GMV and buyers per local day, week or month")
def trend(from_: From, to: To, session: DbSession, caller: Reader, con: Warehouse,
          grain: Grain = "day") -> Trend:
    rng = periods.parse_range(from_, to, tenants.get_merchant(session, caller.tenant_id).timezone)
    return Trend(from_=rng.first, to=rng.last, timezone=rng.zone, grain=grain,
                 points=sales.trend(con, caller.tenant_id, rng, grain))


@router.get("/cohorts", summary="Retention by month of first purchase")
def cohorts(from_month: Annotated[str, Query(description="First cohort, YYYY-MM.", examples=["2026-01"])],
            to_month: Annotated[str, Query(description="Last cohort and last month shown, YYYY-MM.")],
            session: DbSession, caller: Reader, con: Warehouse) -> Cohorts:
    rng = periods.parse_months(from_month, to_month, tenants.get_merchant(session, caller.tenant_id).timezone)
    return Cohorts(from_month=f"{rng.first:%Y-%m}", to_month=f"{rng.last:%Y-%m}", timezone=rng.zone,
                   rows=customers.cohorts(con, caller.tenant_id, rng))


@router.get("/rfm", summary="Customers per RFM group (from the latest traits run)")
def rfm(caller: Reader, con: Warehouse) -> Rfm:
    return customers.rfm(con, caller.tenant_id)
