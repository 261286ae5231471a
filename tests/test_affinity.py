"""A server of several processes keeps each on a CPU core of its own, and a core freed by a process
that ended goes to the next one to claim it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lianjie import affinity
from tests.processes import Cli, _stop, start_server

pytestmark = pytest.mark.skipif(not affinity.can_pin(), reason="only Linux lets a process choose its cores")

# A process that claims a core (after keeping to the cores it is given), says which, and holds it
# until its stdin closes.
_CLAIMANT = """
import os, sys
from pathlib import Path
from lianjie import affinity
os.sched_setaffinity(0, {cores})
cpu = affinity.claim_core(Path(sys.argv[1]))
print(cpu, sorted(os.sched_getaffinity(0)), flush=True)
sys.stdin.read()
"""


def _claim(lock_dir: Path, cores: set[int]) -> tuple[subprocess.Popen[str], int | None, list[int]]:
    process = subprocess.Popen([sys.executable, "-c", _CLAIMANT.format(cores=cores), str(lock_dir)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    claimed, allowed = process.stdout.readline().split(" ", 1)
    return process, None if claimed == "None" else int(claimed), [int(c) for c in allowed.strip(" []\n").split(",")]


def _release(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.close()
    process.wait(timeout=30)


def test_each_process_claims_a_free_core_until_none_is_left(tmp_path: Path) -> None:
    cores = set(sorted(os.sched_getaffinity(0))[:2])
    claims = [_claim(tmp_path / "cores", cores) for _ in range(len(cores) + 1)]
    try:
        pinned = [(cpu, allowed) for _, cpu, allowed in claims[:-1]]
        assert sorted(cpu for cpu, _ in pinned) == sorted(cores)  # type: ignore[type-var]
        assert all(allowed == [cpu] for cpu, allowed in pinned)
        _, extra, allowed = claims[-1]
        assert extra is None  # one too many: left to the scheduler
        assert allowed == sorted(cores)
        _release(claims[0][0])  # its core is free again
        later, cpu, allowed = _claim(tmp_path / "cores", cores)
        assert cpu == claims[0][1]
        assert allowed == [cpu]
        _release(later)
    finally:
        for process, _, _ in claims[1:]:
            _release(process)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 if affinity.can_pin() else True,
                    reason="needs two cores to place two server processes")
def test_server_processes_keep_to_cores_of_their_own(tmp_path: Path) -> None:
    cli = Cli(tmp_path, None)
    cli.env["LIANJIE_WORKERS"] = "2"
    cli.env["LIANJIE_JOBS_ENABLED"] = "false"
    cli.run("db", "upgrade")
    process, _ = start_server(cli)
    try:
        workers = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        placed = {pid: _allowed_cpus(int(pid)) for pid in workers}
    finally:
        _stop(process)
    servers = [cpus for cpus in placed.values() if cpus]  # uvicorn also starts a helper process or two
    assert len(servers) == 2, placed
    assert all(len(cpus) == 1 and next(iter(cpus)).isdigit() for cpus in servers), placed
    assert servers[0] != servers[1], placed  # each worker's threads on one core, not the other's


def _allowed_cpus(pid: int) -> set[str]:
    """Each thread's Cpus_allowed_list ("0-1", "1") of a uvicorn worker; empty for another process."""
    command = Path(f"/proc/{pid}/cmdline").read_bytes()
    if b"multiprocessing" not in command or b"resource_tracker" in command:
        return set()
    cpus = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        cpus.add(status.split("Cpus_allowed_list:")[1].split()[0])
    return cpus
