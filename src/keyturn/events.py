"""Structured security and lifecycle events (``session.rotated``, ``session.reuse_detected``, ...).

Each event is one log record on the ``keyturn.events`` logger whose message is the event name and whose
``keyturn`` attribute holds its fields. Fields are ids and reasons only: never a token or a password.
Subscribers (the server's metrics) hear every event, whatever the log level.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from .typing import JSONValue

logger = logging.getLogger("keyturn.events")

Subscriber = Callable[[str, Mapping[str, JSONValue]], None]
_subscribers: list[Subscriber] = []


def subscribe(subscriber: Subscriber) -> Callable[[], None]:
    """Calls ``subscriber(event, fields)`` for every event from now on; returns the unsubscribe function."""
    _subscribers.append(subscriber)
    return lambda: _subscribers.remove(subscriber)


def emit(event: str, level: int = logging.INFO, **fields: JSONValue) -> None:
    for subscriber in _subscribers:
        subscriber(event, fields)
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={"keyturn": {"event": event, **fields}})
