"""Date and money arithmetic of membership terms: pure functions, no database.

Terms are counted in local dates of the merchant's time zone. A term is ``[starts_on, ends_on)``:
a 12-month membership bought on 2026-03-15 runs through 2027-03-14 and is due for renewal on
2027-03-15. A term ends on the same day N months later; a month without that day ends on its last
day, and the membership remembers the day it was joined on (its *anchor*), so a monthly membership
joined on 31 January ends on 28 February, then 31 March (not 28 March), then 30 April.
"""

from __future__ import annotations

import calendar
import datetime as dt
from zoneinfo import ZoneInfo


def local_date(at: dt.datetime, zone: str) -> dt.date:
    """The merchant's calendar day at instant ``at``."""
    return at.astimezone(ZoneInfo(zone)).date()


def add_months(start: dt.date, months: int, anchor_day: int | None = None) -> dt.date:
    """``start`` plus ``months``, on ``anchor_day`` (default ``start``'s day), clamped to the month's end.

    A start that sits on its month's clamped anchor (28 February for anchor 31) goes back to the
    anchor: 2026-02-28 + 1 month with anchor 31 is 2026-03-31. Any other start keeps its own day.
    """
    day = start.day
    if anchor_day is not None and day == min(anchor_day, calendar.monthrange(start.year, start.month)[1]):
        day = anchor_day
    index = start.year * 12 + start.month - 1 + months
    year, month = divmod(index, 12)
    return dt.date(year, month + 1, min(day, calendar.monthrange(year, month + 1)[1]))


def days_between(start: dt.date, end: dt.date) -> int:
    return (end - start).days


def round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer, halves away from zero."""
    sign = -1 if (numerator < 0) != (denominator < 0) else 1
    numerator, denominator = abs(numerator), abs(denominator)
    return sign * ((2 * numerator + denominator) // (2 * denominator))


def upgrade_fee(old_fee_fen: int, new_fee_fen: int, total_days: int, remaining_days: int) -> int:
    """The prorated fee to move to a dearer plan for the rest of the term (the term end stays).

    ``new fee x remaining share - old fee x remaining share``, where the remaining share is
    ``remaining_days / total_days`` of the membership year, counted in days from the upgrade day
    (included) to the term end (excluded); computed exactly and rounded once, half up, to the fen.
    Example: Gold at 26,000 fen bought for 2026-01-01 .. 2027-01-01 (365 days), upgraded to
    Executive at 65,000 fen on 2026-07-02 (183 days left): (65,000 - 26,000) x 183 / 365 =
    19,553.42, so 19,553 fen. A cheaper plan never gives money back here (0): that is a change at
    renewal, not an upgrade.
    """
    if total_days <= 0 or remaining_days <= 0 or new_fee_fen <= old_fee_fen:
        return 0
    return round_half_up((new_fee_fen - old_fee_fen) * min(remaining_days, total_days), total_days)


def recognised(fee_fen: int, starts_on: dt.date, span_end: dt.date, stop: dt.date, day: dt.date) -> int:
    """Revenue of a term recognised before ``day``: ratable by day over ``[starts_on, span_end)``,
    not beyond ``stop``. Floors of a running total, so the days of any split add up to the fee."""
    total = days_between(starts_on, span_end)
    if total <= 0:
        return fee_fen if day > starts_on else 0
    elapsed = max(0, min(days_between(starts_on, min(day, stop)), total))
    return fee_fen * elapsed // total
