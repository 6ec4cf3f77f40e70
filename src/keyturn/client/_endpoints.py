"""Endpoint shapes: where to log in and refresh, what the fields are called, which errors end a session.

The same client keeps sessions alive against Keyturn and against other refresh endpoints, such as
djangorestframework-simplejwt's (``POST {"refresh"}`` → ``{"access", "refresh"}``).
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ._tokens import Tokens, unverified_claims

__all__ = ["KEYTURN", "SIMPLEJWT", "Endpoints", "backoff", "retry_after"]

DEFINITIVE = frozenset(
    {
        "token_invalid",
        "token_revoked",
        "refresh_token_expired",
        "refresh_token_reused",
        "refresh_token_bound",
        "session_revoked",
        "session_expired",
        "invalid_request",
    }
)
"""Keyturn's codes that end a session when the refresh endpoint answers them.

``invalid_request`` is one: the call is wrong (a missing cookie, a wrong field name) and can never refresh
without a change, so retrying it forever would only hide the fault; the browser client does the same."""


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Paths and field names of a token service; see :data:`KEYTURN` and :data:`SIMPLEJWT`."""

    login: str = "/auth/login"
    refresh: str = "/auth/refresh"
    logout: str | None = "/auth/logout"
    refresh_field: str = "refresh_token"
    """The refresh token's name in the refresh request's body."""
    access_response_field: str = "access_token"
    refresh_response_field: str = "refresh_token"
    username_field: str = "username"
    password_field: str = "password"
    error_field: str = "error"
    """The body field holding an error's code."""
    definitive: frozenset[str] = field(default=DEFINITIVE)
    """Error codes of the refresh endpoint that end the session; every other failure is temporary."""
    expiring: frozenset[str] = field(default=frozenset({"token_expired"}))
    """Codes of a resource server meaning "refresh and retry once" (more, as retries, while the token the
    request carried has expired by the client's clock too: the service reached it late)."""
    rejected: frozenset[str] = field(default=frozenset({"token_invalid", "token_revoked"}))
    """Codes of a resource server, for the current access token, that cost one refresh and one retry, and
    end the session if the retry is refused again."""

    def with_prefix(self, prefix: str) -> Endpoints:
        """The same shape under another route prefix (Keyturn's ``ROUTE_PREFIX``)."""
        prefix = prefix.rstrip("/")
        return replace(
            self,
            login=prefix + "/login",
            refresh=prefix + "/refresh",
            logout=None if self.logout is None else prefix + "/logout",
        )

    def tokens(self, body: object, previous: Tokens | None, sent: float, received: float) -> Tokens:
        """The pair in a login or refresh answer; ``ValueError`` if there is none.

        ``sent`` and ``received`` are the local times of the call: the clock offset is taken at their
        midpoint, its least possible value at ``received``. Without ``server_time``, the access token's
        ``iat`` stands in for it.
        """
        if not isinstance(body, Mapping):
            raise ValueError("the answer is not an object")
        access = body.get(self.access_response_field)
        if not isinstance(access, str) or not access:
            raise ValueError("the answer has no access token")
        refresh = body.get(self.refresh_response_field)
        if not isinstance(refresh, str) or not refresh:
            if previous is None or not previous.refresh_token:
                raise ValueError("the answer has no refresh token")
            refresh = previous.refresh_token  # endpoints without rotation keep the old one
        midpoint = (sent + received) / 2
        claims = unverified_claims(access)
        server_time = _number(body.get("server_time"))
        expires_in = _number(body.get("expires_in"))
        if server_time is None:
            server_time = _number(claims.get("iat"))
        if server_time is None:
            server_time = midpoint
        if expires_in is None:
            exp = _number(claims.get("exp"))
            if exp is None:
                raise ValueError("the answer says nothing of when the access token expires")
            expires_in = exp - server_time
        refresh_in = _number(body.get("refresh_expires_in"))
        session_id = body.get("session_id")
        return Tokens(
            access_token=access,
            refresh_token=refresh,
            access_expires_at=server_time + expires_in,
            lifetime=max(expires_in, 0.0),
            refresh_expires_at=None if refresh_in is None else server_time + refresh_in,
            session_id=session_id if isinstance(session_id, str) else None,
            clock_offset=server_time - midpoint,
            min_clock_offset=server_time - received,
        )

    def error_code(self, body: object) -> str | None:
        if isinstance(body, Mapping):
            code = body.get(self.error_field)
            if isinstance(code, str):
                return code
        return None


KEYTURN = Endpoints()
"""Keyturn's token service."""

SIMPLEJWT = Endpoints(
    login="/api/token/",
    refresh="/api/token/refresh/",
    logout=None,
    refresh_field="refresh",
    access_response_field="access",
    refresh_response_field="refresh",
    error_field="code",
    definitive=frozenset({"token_not_valid"}),
    expiring=frozenset({"token_not_valid"}),
    rejected=frozenset(),
)
"""djangorestframework-simplejwt's ``TokenObtainPairView`` and ``TokenRefreshView`` under ``/api/token/``.

SimpleJWT answers every bad token with ``token_not_valid``, an expired access token included, so on a
resource request that code means "refresh and retry once" (more only for a token the client's clock also
says expired; see ``KeyturnAuth``), never "end the session".
"""


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


BACKOFF_BASE = 0.5
BACKOFF_FACTOR = 2.0
BACKOFF_CAP = 30.0


def backoff(attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1, 2, …): full jitter, ``Retry-After`` wins."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), BACKOFF_CAP * 4)
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * BACKOFF_FACTOR ** min(max(attempt - 1, 0), 32))
    return rng.uniform(0, ceiling)


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """``Retry-After`` in seconds (a number, or an HTTP date counted from ``now``, epoch seconds), or None."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
