"""What a response to an authenticated request means for the client: the I/O-free part every adapter
(httpx sync and async, requests) shares."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Protocol

from .manager import TokenManager

__all__ = ["IDEMPOTENT", "Verdict", "judge_response"]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class Verdict(enum.Enum):
    DONE = "done"
    """Hand the response to the application."""
    REFRESH = "refresh"
    """The current token expired early: refresh, then retry once."""
    RESEND = "resend"
    """The request carried an older token: retry once with the current one."""
    RETRY_LATER = "retry_later"
    """A temporary failure of an idempotent request: back off, then retry."""


class _Response(Protocol):
    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def content(self) -> bytes: ...


def error_code(manager: TokenManager, response: _Response) -> str | None:
    """The error code of a 401: from the body, else from ``WWW-Authenticate``'s ``error_description``."""
    try:
        code = manager.endpoints.error_code(json.loads(response.content or b"null"))
    except ValueError:
        code = None
    if code is None:
        challenge = response.headers.get("www-authenticate", "")
        marker = 'error_description="'
        if marker in challenge:
            code = challenge.split(marker, 1)[1].split(":", 1)[0].split('"', 1)[0]
    return code


def judge_response(manager: TokenManager, response: _Response, sent_token: str, may_retry: bool) -> Verdict:
    status = response.status_code
    if status == 401:
        current = manager.tokens
        if current is not None and current.access_token != sent_token:
            return Verdict.RESEND
        code = error_code(manager, response)
        if code in manager.endpoints.expiring:
            return Verdict.REFRESH
        if code in manager.endpoints.rejected:
            manager.end(code or "token_invalid")
        return Verdict.DONE
    if may_retry and (status == 429 or status >= 500):
        return Verdict.RETRY_LATER
    return Verdict.DONE
