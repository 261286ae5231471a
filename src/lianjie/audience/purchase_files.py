"""Reading purchase histories from files for the CLV fit: the CDNOW files as distributed, or any CSV
whose columns are named on the command line (a till export, a warehouse extract).

A bad row stops the read with its line number and what is wrong with it: a model fitted on a file
with silently skipped rows would give figures nobody can check.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from lianjie.audience.clv import Purchase
from lianjie.commerce.csvfiles import decode, read_rows

DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d %H:%M:%S")


def _date(value: str, date_format: str | None, where: str) -> dt.date:
    formats = (date_format,) if date_format else DATE_FORMATS
    for fmt in formats:
        try:
            return dt.datetime.strptime(value.strip(), fmt).date()
        except ValueError:
            continue
    expected = date_format or "YYYY-MM-DD, YYYYMMDD or YYYY/MM/DD (with an optional time)"
    raise ValueError(f"{where}: date {value!r} is not {expected}")


def _amount(value: str, where: str) -> float:
    try:
        amount = float(value)
    except ValueError:
        raise ValueError(f"{where}: amount {value!r} is not a number") from None
    if amount != amount or amount in (float("inf"), float("-inf")):
        raise ValueError(f"{where}: amount {value!r} is not a number")
    return amount


def read_cdnow(path: Path) -> list[Purchase]:
    """CDNOW as distributed: whitespace-separated ``customer [sample id] YYYYMMDD cds dollars``
    (the master file has four columns, the 1/10 sample five); the customer is the first column."""
    purchases = []
    for number, line in enumerate(decode(path.read_bytes(), "auto", str(path)).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path.name} line {number}"
        if len(fields) not in (4, 5):
            raise ValueError(f"{where}: expected 4 or 5 columns (customer, [sample id], date, CDs, dollars), "
                             f"found {len(fields)}")
        purchases.append(Purchase(fields[0], _date(fields[-3], "%Y%m%d", where), _amount(fields[-1], where)))
    return purchases


def read_csv(path: Path, *, customer: str, date: str, amount: str, date_format: str | None = None,
             encoding: str = "auto", delimiter: str = ",") -> list[Purchase]:
    """A CSV with a header; ``customer``, ``date`` and ``amount`` name its columns."""
    purchases = []
    for line, row in read_rows(path, encoding=encoding, delimiter=delimiter):
        where = f"{path.name} line {line}"
        missing = [name for name in (customer, date, amount) if name not in row]
        if missing:
            raise ValueError(f"{path.name}: no column {missing[0]!r} (columns: {', '.join(row)})")
        values = {name: row[name] for name in (customer, date, amount)}
        empty = [name for name, value in values.items() if value is None]
        if empty:
            raise ValueError(f"{where}: column {empty[0]!r} is empty")
        purchases.append(Purchase(str(values[customer]), _date(str(values[date]), date_format, where),
                                  _amount(str(values[amount]), where)))
    return purchases
