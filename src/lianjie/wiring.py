"""Connects the domains' domain-event subscribers; every entry point calls :func:`install` once.

This module sits at the top of the import order (with ``app`` and ``cli``), so it may import every
domain; the domains themselves never import upwards.
"""

from __future__ import annotations

from lianjie.loyalty import subscribers as loyalty_subscribers
from lianjie.loyalty.coalition import subscribers as coalition_subscribers


def install() -> None:
    """Subscribe every domain's handlers (idempotent)."""
    loyalty_subscribers.install()
    coalition_subscribers.install()
