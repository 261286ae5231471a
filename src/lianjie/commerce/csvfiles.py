"""Reading merchants' CSV exports: UTF-8 (with or without BOM) or GBK, as Chinese ERPs write them.

Files may be gzipped (recognised by their first bytes, whatever their name) and use another delimiter.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ENCODINGS = ("utf-8-sig", "gb18030")
NAMED = {"auto": ENCODINGS, "utf-8": ("utf-8-sig",), "gbk": ("gb18030",)}  # gb18030 is a superset of GBK
_GZIP_MAGIC = b"\x1f\x8b"


def decode(raw: bytes, encoding: str = "auto", name: str = "file") -> str:
    """Text of ``raw``: 'auto' tries UTF-8, then GBK; a file that is not in the named encoding is refused."""
    if raw[:2] == _GZIP_MAGIC:
        raw = gzip.decompress(raw)
    for candidate in NAMED[encoding]:
        try:
            return raw.decode(candidate)
        except UnicodeDecodeError:
            continue
    raise ValueError(f"{name}: not {encoding} text")


def read_rows(path: Path, *, encoding: str = "auto", delimiter: str = ",") -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` for each data row; empty cells become None so optional fields stay unset."""
    text = decode(path.read_bytes(), encoding, str(path))
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    for row in reader:
        yield reader.line_num, {k.strip(): (v.strip() or None) if isinstance(v, str) else v
                                for k, v in row.items() if k is not None}
