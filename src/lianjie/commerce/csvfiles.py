"""Reading merchants' CSV exports: UTF-8 (with or without BOM) or GBK, as Chinese ERPs write them."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ENCODINGS = ("utf-8-sig", "gb18030")


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` for each data row; empty cells become None so optional fields stay unset."""
    raw = path.read_bytes()
    for encoding in ENCODINGS:
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte sequence
        raise ValueError(f"{path}: neither UTF-8 nor GBK")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    for row in reader:
        yield reader.line_num, {k.strip(): (v.strip() or None) if isinstance(v, str) else v
                                for k, v in row.items() if k is not None}
