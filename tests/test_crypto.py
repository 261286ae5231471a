from __future__ import annotations

import multiprocessing
import secrets
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag

from lianjie.config import Settings
from lianjie.crypto import PiiCipher


def test_encrypt_round_trips_and_is_randomised() -> None:
    cipher = PiiCipher(secrets.token_bytes(32))
    first, second = cipher.encrypt("13912345678"), cipher.encrypt("13912345678")
    assert first != second
    assert b"13912345678" not in first
    assert cipher.decrypt(first) == cipher.decrypt(second) == "13912345678"


def test_tampering_and_wrong_keys_are_detected() -> None:
    cipher = PiiCipher(secrets.token_bytes(32))
    blob = bytearray(cipher.encrypt("王小明"))
    blob[-1] ^= 1
    with pytest.raises(InvalidTag):
        cipher.decrypt(bytes(blob))
    with pytest.raises(InvalidTag):
        PiiCipher(secrets.token_bytes(32)).decrypt(cipher.encrypt("王小明"))


def test_lookup_hash_is_stable_keyed_and_separates_kinds() -> None:
    key = secrets.token_bytes(32)
    one, same = PiiCipher(key), PiiCipher(key)
    assert one.lookup_hash("phone", "+8613912345678") == same.lookup_hash("phone", "+8613912345678")
    assert one.lookup_hash("phone", "x") != one.lookup_hash("email", "x")
    assert one.lookup_hash("phone", "x") != PiiCipher(secrets.token_bytes(32)).lookup_hash("phone", "x")


def _key_of(var_dir: Path, start: Any, out: Any) -> None:
    start.wait()  # every process looks for the file at the same moment
    out.put(Settings(var_dir=var_dir, pii_key=None).pii_key_bytes())


def test_processes_starting_together_on_a_fresh_install_share_one_generated_key(tmp_path: Path) -> None:
    # `lianjie serve --workers N` on a new machine: N processes find no key file at once.
    context = multiprocessing.get_context("fork")
    for attempt in range(10):
        var = tmp_path / f"var{attempt}"
        start, out = context.Barrier(8), context.Queue()
        processes = [context.Process(target=_key_of, args=(var, start, out)) for _ in range(8)]
        for process in processes:
            process.start()
        keys = [out.get(timeout=60) for _ in processes]
        for process in processes:
            process.join(60)
        assert len(set(keys)) == 1
        assert len(keys[0]) == 32
        assert (var / "secret.key").stat().st_mode & 0o077 == 0
        assert [p.name for p in var.iterdir()] == ["secret.key"]  # no temporary files left
