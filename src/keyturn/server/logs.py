"""JSON log lines for Keyturn's events: one object a line, ids and reasons only, never a token."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "keyturn", None)
        if isinstance(fields, dict):
            line.update(fields)
        else:
            line["message"] = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            # The type and where it was raised; not the message, which might quote a request's input.
            line["exception"] = record.exc_info[0].__name__
            frames = traceback.extract_tb(record.exc_info[2])
            if frames:
                line["at"] = f"{frames[-1].filename}:{frames[-1].lineno}"
        return json.dumps(line, default=str)


def configure(level: str) -> None:
    """Send Keyturn's and uvicorn's loggers to standard error as JSON lines at ``level``.

    uvicorn's too, so that an error it logs (with the request's traceback and message) goes through the
    same formatter, which keeps the exception's type and place but never its message.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    for name in ("keyturn", "uvicorn"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
