"""Settings: one pydantic-settings object, read from ``LIANJIE_*`` environment variables.

Nothing reads configuration at import time: call :func:`get_settings` (cached) where it is needed,
so tests and the CLI can point lianjie at another database by changing the environment first.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything lianjie can be told; the defaults run embedded under ``./var/``."""

    model_config = SettingsConfigDict(env_prefix="LIANJIE_", env_file=None, extra="ignore")

    var_dir: Path = Field(default=Path("var"), description="Where embedded databases and keys live.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the operational store; default: SQLite file under var_dir.",
    )
    pii_key: str | None = Field(
        default=None,
        description="Base64 of 32 random bytes that encrypt PII and key its lookup hashes; "
        "default: generated once into var_dir/secret.key.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1, description="Server processes for `lianjie serve`.")
    pin_workers: bool = Field(
        default=True, description="With several server processes, keep each on a CPU core of its own (Linux).")
    balance_connections: bool = Field(
        default=True, description="With several server processes, keep keep-alive connections evenly spread over "
                                  "them: a process holding two more than another closes one after its response.")
    warehouse_url: str | None = Field(
        default=None, description="duckdb:///path or spark://local[N][/dir]; default: var_dir/warehouse.duckdb.")
    jobs_enabled: bool = Field(default=True, description="Run the background jobs inside `lianjie serve`.")
    jobs_url: str | None = Field(default=None, description="redis://… for the job queue; default: var_dir/jobs.db.")
    sqlite_busy_timeout_ms: int = 30_000
    max_order_fen: int = Field(
        default=1_000_000_000, ge=1, le=10**15,
        description="The largest order total, line amount or unit price accepted, in fen (default ¥10,000,000): "
                    "above it an amount is taken for a mistake (yuan sent as fen) and refused with a 422.")
    log_sql: bool = False

    @property
    def resolved_var_dir(self) -> Path:
        return self.var_dir.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_var_dir / 'lianjie.db'}"

    def pii_key_bytes(self) -> bytes:
        """The 32-byte PII key; created under var_dir on first use when not configured."""
        if self.pii_key:
            key = base64.urlsafe_b64decode(self.pii_key)
            if len(key) != 32:
                raise ValueError("LIANJIE_PII_KEY must be base64 of exactly 32 bytes")
            return key
        path = self.resolved_var_dir / "secret.key"
        if not path.exists():
            _create_key_file(path)
        return base64.urlsafe_b64decode(path.read_text().strip())


def _create_key_file(path: Path) -> None:
    """Write a new random key to ``path`` unless another process gets there first.

    The processes of ``lianjie serve --workers N`` start together on a fresh install: each used to
    find no file and write its own key, and each then hashed and encrypted with a different one (two
    profiles for one userId, PII that only one process could read). The key is written in full to a
    private temporary file and linked into place, which fails if the file exists: every process then
    reads the one key that won.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret-", suffix=".key")  # mode 0600
    try:
        with os.fdopen(fd, "w") as file:
            file.write(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode() + "\n")
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built once."""
    return Settings()
