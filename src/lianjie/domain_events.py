"""In-process domain events: how a lower domain moves a higher one without importing it.

DESIGN.md's imports point one way (identity → commerce → loyalty …). When a change below must move
something above (an order earns points; two profiles merge, so their tier is evaluated again), the
lower domain defines a small frozen dataclass and :func:`publish`\\ es it; the higher domain
:func:`subscribe`\\ s a handler. Handlers run at once, in the publisher's session and transaction, so
the reaction commits or rolls back with the change that caused it.

Subscriptions are made by :func:`lianjie.wiring.install`, which every entry point (app, CLI, tests)
calls once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

E = TypeVar("E")
Handler = Callable[[Session, Any], None]

_handlers: defaultdict[type, list[Handler]] = defaultdict(list)


def subscribe(event_type: type[E], handler: Callable[[Session, E], None]) -> None:
    """Call ``handler`` for every published ``event_type``; subscribing twice has no further effect."""
    if handler not in _handlers[event_type]:
        _handlers[event_type].append(handler)


def publish(session: Session, event: object) -> None:
    """Run every handler of ``type(event)`` now, in order of subscription, inside the caller's transaction."""
    for handler in list(_handlers.get(type(event), ())):
        handler(session, event)


def handlers_of(event_type: type) -> list[Handler]:
    """The handlers subscribed to ``event_type`` (for tests and diagnostics)."""
    return list(_handlers.get(event_type, ()))
