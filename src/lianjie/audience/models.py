"""Tables of the audience domain: each merchant's trait settings, and the traits the job computed,
copied from the warehouse so a profile page can show them without reaching the warehouse."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Double, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from lianjie.db import Base, SettingsDocument, UTCDateTime, tenant_fk


class TraitSettings(SettingsDocument, Base):
    """A merchant's RFM window, lifecycle thresholds and CLV horizon, as one document (settings.py)."""

    __tablename__ = "audience_settings"


class CustomerTrait(Base):
    """One customer's traits as the last run computed them: the warehouse's ``customer_traits`` row.

    ``customer_id`` is the customer's root profile at computation time; the row is replaced whole
    (with every other row of the merchant) by each run, so it carries no foreign key to profiles.
    """

    __tablename__ = "customer_traits"

    tenant_id: Mapped[int] = mapped_column(tenant_fk(), primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    first_order_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_order_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    recency_days: Mapped[int | None] = mapped_column(Integer)
    frequency: Mapped[int | None] = mapped_column(Integer)
    monetary_fen: Mapped[int | None] = mapped_column(BigInteger)
    r_score: Mapped[int | None] = mapped_column(Integer)
    f_score: Mapped[int | None] = mapped_column(Integer)
    m_score: Mapped[int | None] = mapped_column(Integer)
    rfm_group: Mapped[str | None] = mapped_column(String(24))
    lifecycle_stage: Mapped[str] = mapped_column(String(16))
    clv_p_alive: Mapped[float | None] = mapped_column(Double)
    clv_expected_purchases: Mapped[float | None] = mapped_column(Double)
    clv_expected_value_fen: Mapped[int | None] = mapped_column(BigInteger)
