"""Each process of a multi-process server kept on a CPU core of its own (Linux).

A server process runs Python on one core at a time (the GIL), in several threads: the event loop,
and the threads that prepare and write tracking batches, which hand the GIL to each other every
time one of them waits on the database. Left to the scheduler, the threads of one process ran on
all cores in turn, so each hand-over woke a thread on another core, whose caches held none of the
process's objects. On the 2-core benchmark machine, two threads ingesting in one process cost
70 µs of CPU an event against 47 for one thread; the same two threads kept on one core, 52.

With one process per core each keeps its core's caches, and the processes still run side by side.
A process claims a core by locking that core's file under the server's ``var`` directory, so the
worker that uvicorn starts in place of a dead one takes the core the dead one held (the kernel drops
a lock when its process ends). Processes beyond the number of cores are left to the scheduler.
"""

from __future__ import annotations

import logging
import os
from contextlib import suppress
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

# Lock files this process holds: open for its whole life, as closing one would free its core.
_held: list[int] = []


def can_pin() -> bool:
    """Whether this platform lets a process choose its cores (Linux)."""
    return fcntl is not None and hasattr(os, "sched_setaffinity")


def claim_core(lock_dir: Path) -> int | None:
    """Keep this process, every thread of it, on the first core no other process locked in
    ``lock_dir``; returns the core, or None when every core is taken (or pinning is not possible).

    Only cores this process may already run on are tried (a container's CPU set, ``taskset``).
    """
    if not can_pin():
        return None
    lock_dir.mkdir(parents=True, exist_ok=True)
    claimed = first_free(lock_dir, {cpu: f"cpu{cpu}.lock" for cpu in sorted(os.sched_getaffinity(0))})
    if claimed is None:
        return None
    cpu, fd = claimed
    _held.append(fd)
    _pin_every_thread(cpu)
    log.info("server process %d keeps to CPU %d", os.getpid(), cpu)
    return cpu


def first_free(lock_dir: Path, names: dict[int, str]) -> tuple[int, int] | None:
    """Lock the first of ``names`` (files in ``lock_dir``, by key) that no other process holds; its key
    and the open descriptor that holds the lock until it is closed or the process ends."""
    for key, name in names.items():
        fd = os.open(lock_dir / name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        return key, fd
    return None


def _pin_every_thread(cpu: int) -> None:
    """An affinity set on Linux applies to one thread; threads started later inherit the caller's."""
    os.sched_setaffinity(0, {cpu})
    with suppress(FileNotFoundError):
        for tid in os.listdir("/proc/self/task"):
            with suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(int(tid), {cpu})
