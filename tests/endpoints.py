"""The table of every admin API endpoint with the scope it needs.

Each domain's API tests list their endpoints here-shaped; ``tests/test_endpoint_coverage.py`` checks
that together they name every ``/api/v1`` route, so no endpoint escapes the key, scope and
merchant-isolation checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    scope: str
    body: dict[str, Any] | None = None
    route: str = ""

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def template(self) -> str:
        """The route as FastAPI declares it (``{code}`` placeholders instead of sample values)."""
        return f"{self.method} {self.route or self.path}"
