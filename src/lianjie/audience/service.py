"""Traits in the operational store: the job's copy of the warehouse rows, and reading one customer's.

The copy exists so a profile page (and anything else answering one customer at a time) can show
traits without reaching the warehouse, which may be a DuckDB file another process is writing or a
Spark cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from lianjie.audience.labels import GROUPS, STAGES, label
from lianjie.audience.models import CustomerTrait
from lianjie.errors import NotFound
from lianjie.identity.service import root_of

if TYPE_CHECKING:
    import pyarrow as pa

BATCH = 10_000


def replace_traits(session: Session, tenant_id: int, rows: pa.Table) -> int:
    """Replace every stored trait row of the merchant with ``rows`` (CUSTOMER_TRAITS_SCHEMA layout)."""
    session.execute(delete(CustomerTrait).where(CustomerTrait.tenant_id == tenant_id))
    for batch in rows.to_batches(BATCH):
        session.execute(insert(CustomerTrait), batch.to_pylist())
    session.flush()
    return int(rows.num_rows)


def traits_of(session: Session, tenant_id: int, profile_id: int) -> dict[str, Any]:
    """The traits of the customer a profile belongs to (any of its profiles will do), with labels.

    404 for a profile the merchant does not have, and for a customer the job has not reached yet
    (created, or split off by an undone merge, since the last run).
    """
    root = root_of(session, tenant_id, profile_id)
    row = session.scalar(select(CustomerTrait).where(CustomerTrait.tenant_id == tenant_id,
                                                     CustomerTrait.customer_id == root))
    if row is None:
        raise NotFound(f"no traits for customer {root} yet: they are computed by the compute-traits job",
                       code="traits_not_computed")
    return {
        "customer_id": row.customer_id, "computed_at": row.computed_at,
        "first_order_at": row.first_order_at, "last_order_at": row.last_order_at,
        "recency_days": row.recency_days, "frequency": row.frequency, "monetary_fen": row.monetary_fen,
        "r_score": row.r_score, "f_score": row.f_score, "m_score": row.m_score,
        "rfm_group": label(row.rfm_group, GROUPS), "lifecycle_stage": label(row.lifecycle_stage, STAGES),
        "clv_p_alive": row.clv_p_alive, "clv_expected_purchases": row.clv_expected_purchases,
        "clv_expected_value_fen": row.clv_expected_value_fen,
    }
