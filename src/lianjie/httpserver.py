"""The HTTP/1.1 protocol `lianjie serve` runs: uvicorn's on httptools, with Nagle's algorithm off and
keep-alive connections kept evenly spread over the server's processes.

The processes of ``--workers N`` share one listening socket, and whichever accepts first keeps the
connection for as long as the client keeps it alive. A till, a mini-program back end or an SDK
sends over a few long-lived connections, so the split is often uneven: with 4 clients and 2
processes, half the time one process holds 3 connections and the other 1, and the first is then
short of its core while the second idles. Measured with ``bench/ingest.py`` on SQLite: 2-2 splits
ran 31,000-34,000 events/s, 3-1 splits 29,000.

So the processes count their open connections in a small shared file (:class:`ConnectionShares`),
and a process holding at least two more than another answers one request with ``Connection:
close``. The client gets its response, opens a new connection for its next request (every HTTP
client does), and that one is likely accepted by the idler process, as the busy one's event loop
waits for the GIL behind the threads that prepare and write. One connection is shed at a time.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import socket
from contextlib import suppress
from pathlib import Path

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lianjie import affinity

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: connections are not balanced
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

_SLOT_BYTES = 4


class ConnectionShares:
    """The open connections of each process of one server, in a file every process maps.

    A process claims a slot by locking that slot's file under ``run_dir`` (the kernel drops the
    lock when the process ends, so the worker started in place of a dead one takes its slot and
    starts its count again from zero). Each process writes only its own slot.
    """

    def __init__(self, run_dir: Path, processes: int) -> None:
        if fcntl is None:
            raise OSError("connection shares need POSIX file locks")
        run_dir.mkdir(parents=True, exist_ok=True)
        self.slot, self._lock_fd = self._claim(run_dir, processes)
        fd = os.open(run_dir / "connections", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < processes * _SLOT_BYTES:
                os.ftruncate(fd, processes * _SLOT_BYTES)
            self._map = mmap.mmap(fd, processes * _SLOT_BYTES)
        finally:
            os.close(fd)
        self._counts = memoryview(self._map).cast("I")
        self._counts[self.slot] = 0
        self.shedding: object | None = None  # the connection being closed, if any

    @staticmethod
    def _claim(run_dir: Path, processes: int) -> tuple[int, int]:
        claimed = affinity.first_free(run_dir, {slot: f"slot{slot}.lock" for slot in range(processes)})
        if claimed is None:
            raise OSError(f"all {processes} connection slots under {run_dir} are held by other processes")
        return claimed

    def opened(self) -> None:
        self._counts[self.slot] += 1

    def closed(self, connection: object) -> None:
        self._counts[self.slot] = max(0, self._counts[self.slot] - 1)
        if self.shedding is connection:
            self.shedding = None

    def counts(self) -> list[int]:
        return list(self._counts)

    def should_shed(self, connection: object) -> bool:
        """Whether ``connection`` should close after its current response, and if so, mark it."""
        if self.shedding is not None:
            return False
        counts = self.counts()
        mine = counts.pop(self.slot)
        if mine - min(counts) < 2:
            return False
        self.shedding = connection
        return True


class ServerHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol on httptools (llhttp, C), with Nagle's algorithm off on every
    connection and, in a server of several processes, connections balanced over them.

    httptools and uvloop are uvicorn's own fast path (``uvicorn[standard]``): with h11 (pure Python)
    and asyncio's loop, reading a 40 KB tracking batch and answering it cost the server about as
    much CPU as validating its messages.

    asyncio turns Nagle off only for sockets it knows to be TCP; a worker process of ``--workers N``
    gets the listening socket handed over without its protocol number, so its connections kept
    Nagle on, and each response's body (written after its headers) waited for the client's delayed
    ACK: about 40 ms a request.
    """

    # This process's shares, set by :func:`balance_connections` in each worker of a multi-process server.
    shares: ConnectionShares | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
        if self.shares is not None:
            self.shares.opened()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.shares is not None:
            self.shares.closed(self)
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        # As uvicorn's own graceful shutdown does: the response says "Connection: close", then the
        # connection closes. Only a request being served now, not one queued behind it (pipelined).
        if self.shares is not None and self.cycle is not None and not self.cycle.response_complete \
                and not self.pipeline and self.shares.should_shed(self):
            self.cycle.keep_alive = False


def balance_connections(run_dir: Path, processes: int) -> None:
    """In a worker of a server of ``processes`` processes: count this process's connections in
    ``run_dir`` and shed one when it holds two more than another process."""
    if processes < 2 or fcntl is None:
        return
    try:
        ServerHttpProtocol.shares = ConnectionShares(run_dir, processes)
    except OSError as exc:  # serving unbalanced beats not serving
        log.warning("connections not balanced over the server's processes: %s", exc)
