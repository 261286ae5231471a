"""Encryption of PII at rest and keyed lookup hashes (DESIGN.md: conventions).

A value such as a phone number is stored twice: encrypted with AES-GCM (so it can be shown to a
permitted operator) and as an HMAC-SHA256 of its normalised form (so it can be matched without
decrypting anything). Both keys are derived from the one PII key in settings, for separate purposes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from lianjie.config import get_settings

_NONCE_BYTES = 12
_FORMAT_V1 = b"\x01"
_HASH_CACHE_SIZE = 100_000


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"lianjie/" + purpose).derive(master)


class PiiCipher:
    """Encrypts and hashes PII with keys derived from one master key."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("the PII master key must be 32 bytes")
        self._aead = AESGCM(_derive(master_key, b"encrypt"))
        self._mac_key = _derive(master_key, b"lookup")
        self._hashes: dict[tuple[str, str], str] = {}

    def encrypt(self, plaintext: str | bytes) -> bytes:
        """AES-GCM with a random nonce; text is encrypted as UTF-8 (:meth:`decrypt` gives text back)."""
        nonce = os.urandom(_NONCE_BYTES)
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        return _FORMAT_V1 + nonce + self._aead.encrypt(nonce, data, None)

    def decrypt(self, blob: bytes) -> str:
        if blob[:1] != _FORMAT_V1:
            raise ValueError("unknown PII ciphertext format")
        nonce, body = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        return self._aead.decrypt(nonce, body, None).decode()

    def lookup_hash(self, kind: str, normalised: str) -> str:
        """Hex HMAC of ``kind:value``; the kind keeps a phone and an email with equal text apart.

        Remembered (up to ~100k values): a batch names the same device or user in many messages.
        """
        key = (kind, normalised)
        cached = self._hashes.get(key)
        if cached is None:
            if len(self._hashes) >= _HASH_CACHE_SIZE:
                self._hashes.clear()
            message = f"{kind}:{normalised}".encode()
            cached = self._hashes[key] = hmac.digest(self._mac_key, message, hashlib.sha256).hex()
        return cached


@lru_cache(maxsize=1)
def get_cipher() -> PiiCipher:
    """The process-wide cipher built from settings."""
    return PiiCipher(get_settings().pii_key_bytes())
