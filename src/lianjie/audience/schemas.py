"""Response shapes of the audience API."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel


class Label(BaseModel):
    code: str
    zh: str
    en: str


class TraitsOut(BaseModel):
    """A customer's traits as the last compute-traits run left them (null where they do not apply:
    no purchase yet, or too few repeat buyers at the merchant to fit CLV)."""

    customer_id: int
    computed_at: dt.datetime
    first_order_at: dt.datetime | None
    last_order_at: dt.datetime | None
    recency_days: int | None
    frequency: int | None
    monetary_fen: int | None
    r_score: int | None
    f_score: int | None
    m_score: int | None
    rfm_group: Label | None
    lifecycle_stage: Label
    clv_p_alive: float | None
    clv_expected_purchases: float | None
    clv_expected_value_fen: int | None
