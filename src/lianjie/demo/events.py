"""Segment-spec messages as pre-built JSON text, and the buffered per-part output files.

An event line is assembled from fragments that were serialised once (a product's properties, a
device's context, a customer's traits) instead of calling ``json.dumps`` on a fresh dict per event:
the large world writes tens of millions of events, and that is where the time would go. Every
fragment that can hold free text goes through :func:`dumps`, so the assembled line is valid JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from lianjie.demo.reference import SOURCES
from lianjie.demo.seasons import Calendar

_FLUSH_EVERY = 2_000


def dumps(value: Any) -> str:
    """Compact UTF-8 JSON, the one serialisation used for every generated file."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def yuan(fen: int) -> str:
    """A fen amount as a JSON number in yuan with two decimals (``-12.50``)."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def ids_fragment(user_id: str | None, anonymous_id: str | None) -> str:
    """The ``userId`` / ``anonymousId`` members of a message (both are generated ASCII ids)."""
    out = ""
    if user_id:
        out += f',"userId":"{user_id}"'
    if anonymous_id:
        out += f',"anonymousId":"{anonymous_id}"'
    return out


class Buffer:
    """Lines for one file, written in large chunks.

    Hot code appends to :attr:`lines` directly (a bound ``append`` is the cheapest call there is) and
    the owner calls :meth:`flush_if_full` between customers.
    """

    __slots__ = ("_handle", "_written", "lines")

    def __init__(self, path: Path, header: str | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: TextIO = path.open("w", encoding="utf-8", newline="", buffering=1 << 20)
        self.lines: list[str] = []
        self._written = 0
        if header:
            self._handle.write(header)

    @property
    def count(self) -> int:
        """Lines added so far (the header not included)."""
        return self._written + len(self.lines)

    def flush_if_full(self) -> None:
        if len(self.lines) >= _FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.lines:
            self._handle.write("".join(self.lines))
            self._written += len(self.lines)
            self.lines.clear()

    def close(self) -> None:
        self.flush()
        self._handle.close()


class EventSink:
    """The four per-source event files of one merchant in one part, with deterministic messageIds.

    A messageId is UUID-shaped but built from (seed, merchant, part, source, counter), so it is
    unique by construction and identical on every run with the same seed.
    """

    def __init__(self, calendar: Calendar, paths: dict[str, Path], seed: int, merchant: int,
                 part: int) -> None:
        self._calendar = calendar
        self._buffers = {source: Buffer(paths[source]) for source in SOURCES}
        self._append = {source: buffer.lines.append for source, buffer in self._buffers.items()}
        self._prefix = {
            source: f"{seed & 0xFFFFFFFF:08x}-{merchant:04x}-{part:04x}-{i:04x}-"
            for i, source in enumerate(SOURCES)
        }
        self._counter = dict.fromkeys(SOURCES, 0)

    @property
    def count(self) -> int:
        return sum(b.count for b in self._buffers.values())

    def _message(self, source: str, kind: str, t: int, ids: str, extra: str) -> None:
        self._counter[source] += 1
        self._append[source](
            f'{{"type":"{kind}","messageId":"{self._prefix[source]}{self._counter[source]:012x}",'
            f'"timestamp":"{self._calendar.utc_iso(t)}"{ids}{extra}}}\n'
        )

    def track(self, source: str, t: int, ids: str, event: str, properties: str, context: str) -> None:
        self._message(source, "track", t, ids,
                      f',"event":"{event}","properties":{properties},"context":{context}')

    def page(self, source: str, t: int, ids: str, name_json: str, properties: str, context: str) -> None:
        self._message(source, "page", t, ids,
                      f',"name":{name_json},"properties":{properties},"context":{context}')

    def screen(self, source: str, t: int, ids: str, name_json: str, context: str) -> None:
        self._message(source, "screen", t, ids, f',"name":{name_json},"context":{context}')

    def identify(self, source: str, t: int, ids: str, traits: str, context: str) -> None:
        self._message(source, "identify", t, ids, f',"traits":{traits},"context":{context}')

    def alias(self, source: str, t: int, user_id: str, previous_id: str, context: str) -> None:
        self._message(source, "alias", t, f',"userId":"{user_id}"',
                      f',"previousId":"{previous_id}","context":{context}')

    def flush_if_full(self) -> None:
        for buffer in self._buffers.values():
            buffer.flush_if_full()

    def close(self) -> None:
        for buffer in self._buffers.values():
            buffer.close()
