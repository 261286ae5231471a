"""Input types every domain's schemas share, so what the API accepts always fits what is stored.

A value that passes these never fails later in the database: times are aware and convertible to UTC
(a naive time is read as UTC, as the API documents), integers fit a signed 64-bit column, and text
holds no NUL character (PostgreSQL refuses one in any text column).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, Field

INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("the time is outside the range that can be stored (years 1 to 9999 in UTC)") from None


# A time as the API takes it: ISO 8601 with an offset; without one (or a bare date) it is UTC.
AwareTime = Annotated[dt.datetime, AfterValidator(_utc)]

# Integers stored in BIGINT columns.
Int64 = Annotated[int, Field(ge=-INT64_MAX, le=INT64_MAX)]
PositiveInt64 = Annotated[int, Field(ge=1, le=INT64_MAX)]


def find_nul(value: Any, path: str = "") -> str | None:
    """The path (``a.b[2]``) of the first string (key or value) inside ``value`` holding a NUL, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return inner
            found = find_nul(item, inner)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = find_nul(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


# A calendar date a report or query is about: later code adds and subtracts months and years, which
# would overflow near year 1 or 9999, and nothing a merchant asks about lies outside these.
FIRST_DATE, LAST_DATE = dt.date(1900, 1, 1), dt.date(2999, 12, 31)
ApiDate = Annotated[dt.date, Field(ge=FIRST_DATE, le=LAST_DATE)]
