"""Limit/offset pages shared by every list endpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")
R = TypeVar("R")

MAX_LIMIT = 500
MAX_OFFSET = 2**63 - 1  # what SQLite and PostgreSQL take in OFFSET; beyond it a 422, not an overflow
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="Rows matching the filters, across all pages.")
    limit: int
    offset: int


def paginate(session: Session, query: Select[R], limit: int, offset: int) -> tuple[Sequence[R], int]:
    """One page of ``query`` (already ordered) and the number of rows across all pages."""
    counted: Select[Any] = select(func.count()).select_from(query.order_by(None).subquery())
    total = session.scalar(counted) or 0
    return session.scalars(query.limit(limit).offset(offset)).all(), total
