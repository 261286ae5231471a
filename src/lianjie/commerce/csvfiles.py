"""Reading merchants' CSV exports: UTF-8 (with or without BOM) or GBK, as Chinese ERPs write them.

Files may be gzipped (recognised by their first bytes, whatever their name) and use another delimiter.
A file written back for the merchant (an import's rejects) uses the encoding its input came in, so
the spreadsheet that opened the one opens the other: a GBK export gets a GBK answer.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENCODINGS = ("utf-8-sig", "gb18030")
NAMED = {"auto": ENCODINGS, "utf-8": ("utf-8-sig",), "gbk": ("gb18030",)}  # gb18030 is a superset of GBK
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Decoded:
    """A file's text and the codec to write an answer to it with (a BOM is kept if it had one)."""

    text: str
    encoding: str


def decode_file(raw: bytes, encoding: str = "auto", name: str = "file") -> Decoded:
    """Text of ``raw``: 'auto' tries UTF-8, then GBK; a file that is not in the named encoding is refused."""
    if raw[:2] == _GZIP_MAGIC:
        raw = gzip.decompress(raw)
    for candidate in NAMED[encoding]:
        try:
            text = raw.decode(candidate)
        except UnicodeDecodeError:
            continue
        writes = candidate if candidate != "utf-8-sig" or raw.startswith(_BOM) else "utf-8"
        return Decoded(text, writes)
    raise ValueError(f"{name}: not {encoding} text")


def decode(raw: bytes, encoding: str = "auto", name: str = "file") -> str:
    return decode_file(raw, encoding, name).text


def rows_of(text: str, delimiter: str = ",") -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` for each data row; empty cells become None so optional fields stay unset."""
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    for row in reader:
        yield reader.line_num, {k.strip(): (v.strip() or None) if isinstance(v, str) else v
                                for k, v in row.items() if k is not None}


def read_rows(path: Path, *, encoding: str = "auto", delimiter: str = ",") -> Iterator[tuple[int, dict[str, Any]]]:
    """The data rows of a file (see :func:`rows_of`)."""
    return rows_of(decode(path.read_bytes(), encoding, str(path)), delimiter)
