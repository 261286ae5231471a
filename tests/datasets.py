"""The shared datasets (../shared/datasets beside the repository): a test that needs one skips
without it on a developer's machine, and fails in CI, where the datasets are always there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATASETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"


def require(path: Path) -> Path:
    if not path.exists():
        reason = f"the dataset file is not at {path.resolve()}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path
