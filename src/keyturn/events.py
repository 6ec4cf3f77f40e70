"""Structured security and lifecycle events (``session.rotated``, ``session.reuse_detected``, ...).

Each event is one log record on the ``keyturn.events`` logger whose message is the event name and whose
``keyturn`` attribute holds its fields. Fields are ids and reasons only: never a token or a password.
"""

from __future__ import annotations

import logging

from .typing import JSONValue

logger = logging.getLogger("keyturn.events")


def emit(event: str, level: int = logging.INFO, **fields: JSONValue) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={"keyturn": {"event": event, **fields}})
