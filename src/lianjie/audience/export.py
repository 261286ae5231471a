"""Audience's section of the PIPL export (identity/export.py): the traits the last compute-traits run
stored for the customer in the operational store (RFM scores, lifecycle stage, CLV).

Segment members are not here: the operational store keeps only each snapshot's size, and the
members (customer ids, nothing personal) live in the warehouse's ``segment_members``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lianjie.audience.models import CustomerTrait
from lianjie.crypto import PiiCipher
from lianjie.identity.export import register_section, rows


def traits(session: Session, cipher: PiiCipher, tenant_id: int, profile_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The stored rows of any of the profiles (a row names the customer's root when it was computed;
    after a merge or unmerge the next run writes it again under the new root)."""
    found = session.scalars(select(CustomerTrait).where(CustomerTrait.tenant_id == tenant_id,
                                                        CustomerTrait.customer_id.in_(profile_ids))
                            .order_by(CustomerTrait.customer_id))
    return rows(found, exclude={"tenant_id"})


def install() -> None:
    register_section("traits", ["customer_traits"], traits)
