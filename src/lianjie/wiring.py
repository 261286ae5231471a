"""Connects the domains' domain-event subscribers and PIPL export sections; every entry point calls
:func:`install` once.

This module sits at the top of the import order (with ``app`` and ``cli``), so it may import every
domain; the domains themselves never import upwards.
"""

from __future__ import annotations

from lianjie.audience import export as audience_export
from lianjie.commerce import export as commerce_export
from lianjie.loyalty import export as loyalty_export
from lianjie.loyalty import subscribers as loyalty_subscribers
from lianjie.loyalty.coalition import export as coalition_export
from lianjie.loyalty.coalition import subscribers as coalition_subscribers
from lianjie.loyalty.coupons import export as coupons_export
from lianjie.loyalty.membership import export as membership_export


def install() -> None:
    """Subscribe every domain's handlers and register every export section (idempotent)."""
    loyalty_subscribers.install()
    coalition_subscribers.install()
    for section in (commerce_export, loyalty_export, coupons_export, membership_export, coalition_export,
                    audience_export):
        section.install()
