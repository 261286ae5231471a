"""Connects the domains' domain-event subscribers; every entry point calls :func:`install` once.

This module sits at the top of the import order (with ``app`` and ``cli``), so it may import every
domain; the domains themselves never import upwards.
"""

from __future__ import annotations


def install() -> None:
    """Subscribe every domain's handlers (idempotent)."""
