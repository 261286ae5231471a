from __future__ import annotations

import secrets

import pytest
from cryptography.exceptions import InvalidTag

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
