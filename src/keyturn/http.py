"""Framework-neutral HTTP pieces shared by the token service and the resource-server middleware.

The bearer token of an ``Authorization`` header, and Keyturn's error response: a JSON
body ``{"error", "error_description", "retryable"}`` and, on 401, ``WWW-Authenticate`` (RFC 6750).
On the OAuth 2.0 routes (``oauth=True``) the same renderer answers in RFC 6749 section 5.2's form:
``error`` is the RFC's code (``keyturn.oauth.oauth_error``) and ``keyturn_error`` Keyturn's own beside it.
"""

from __future__ import annotations

import json
import math
from urllib.parse import parse_qs

from .dpop import ALGORITHMS as DPOP_ALGORITHMS
from .errors import (
    DpopError,
    InsufficientScope,
    InvalidClient,
    InvalidCredentials,
    InvalidRequest,
    KeyturnError,
    Overloaded,
    RateLimited,
    RefreshTokenBound,
    TokenInvalid,
    UseDpopNonce,
)
from .oauth import oauth_error

__all__ = [
    "HOST_REFRESH_COOKIE",
    "REALM",
    "REFRESH_COOKIE",
    "bearer_token",
    "bearer_token_if_any",
    "error_body",
    "error_headers",
    "error_json",
    "error_response",
    "error_status",
    "refresh_cookie",
    "single_cookie",
]

REALM = "keyturn"
REFRESH_COOKIE = "keyturn_refresh"
HOST_REFRESH_COOKIE = "__Host-" + REFRESH_COOKIE
"""The refresh cookie's name with ``COOKIE_HOST_PREFIX``: browsers keep a ``__Host-`` cookie only when it is
Secure, has Path=/ and no Domain, set by this very host, so a sibling subdomain cannot plant one."""


def refresh_cookie(host_prefix: bool, path: str) -> tuple[str, str]:
    """The refresh cookie's name and ``Path``: ``keyturn_refresh`` at ``path`` (where the session routes
    live), or with ``COOKIE_HOST_PREFIX`` (``host_prefix``) ``__Host-keyturn_refresh`` at ``/``, which the
    prefix requires. Only that name is then read."""
    if host_prefix:
        return HOST_REFRESH_COOKIE, "/"
    return REFRESH_COOKIE, path or "/"


def bearer_token(authorization: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None without the header, ``token_invalid`` if odd."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise TokenInvalid("The Authorization header is not 'Bearer <token>'.")
    return token


def single_cookie(cookie_headers: list[str], name: str) -> None:
    """Refuse (``invalid_request``) a request whose ``Cookie`` headers carry ``name`` more than once.

    Frameworks keep one of them (the last, say), and a cookie a sibling subdomain planted for the same
    path could be that one: with two, the service cannot tell which is its own, so it uses neither.
    """
    found = sum(
        1 for header in cookie_headers for part in header.split(";") if part.strip().startswith(name + "=")
    )
    if found > 1:
        raise InvalidRequest(f"The request carries the {name} cookie more than once.")


def error_body(error: KeyturnError, *, oauth: bool = False) -> dict[str, str | bool]:
    if oauth:
        return {
            "error": oauth_error(error)[0],
            "error_description": error.detail,
            "keyturn_error": error.code,
            "retryable": error.retryable,
        }
    return {"error": error.code, "error_description": error.detail, "retryable": error.retryable}


def error_status(error: KeyturnError, *, oauth: bool = False) -> int:
    """The status of the answer to ``error``: its own, or on the OAuth routes RFC 6749's (400 for
    ``invalid_grant``, 401 for ``invalid_client``)."""
    return oauth_error(error)[1] if oauth else error.status


def error_json(error: KeyturnError) -> bytes:
    return json.dumps(error_body(error), separators=(",", ":")).encode()


def error_headers(error: KeyturnError, realm: str = REALM, *, oauth: bool = False) -> dict[str, str]:
    headers = {"Cache-Control": "no-store"}
    if isinstance(error, UseDpopNonce):
        headers["DPoP-Nonce"] = error.nonce
    if oauth:
        if isinstance(error, InvalidClient):  # RFC 6749 section 5.2: the scheme the client may use
            headers["WWW-Authenticate"] = f'Basic realm="{realm}"'
    elif error.status == 401:
        if isinstance(error, InvalidCredentials):
            headers["WWW-Authenticate"] = f'Bearer realm="{realm}"'
        else:
            description = error.detail.replace("\\", "").replace('"', "'")
            # RFC 9449 section 7.1: a refused DPoP proof or key is challenged in the DPoP scheme.
            dpop = isinstance(error, DpopError | RefreshTokenBound)
            code = error.code if isinstance(error, DpopError) else "invalid_token"
            algs = f', algs="{" ".join(DPOP_ALGORITHMS)}"' if dpop else ""
            headers["WWW-Authenticate"] = (
                f'{"DPoP" if dpop else "Bearer"} realm="{realm}", error="{code}", '
                f'error_description="{error.code}: {description}"{algs}'
            )
    elif isinstance(error, InsufficientScope):
        headers["WWW-Authenticate"] = f'Bearer realm="{realm}", error="insufficient_scope"'
    if isinstance(error, RateLimited | Overloaded):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return headers


def error_response(
    error: KeyturnError, realm: str = REALM, *, oauth: bool = False
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of the answer to ``error``, for integrations without a JSON response type
    (``oauth``: in RFC 6749's form, as the OAuth 2.0 routes answer)."""
    body = json.dumps(error_body(error, oauth=oauth), separators=(",", ":")).encode()
    headers = list(error_headers(error, realm, oauth=oauth).items())
    headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    return error_status(error, oauth=oauth), headers, body


NO_TOKEN = "No access token was given."


def required_bearer_token(authorization: str | None) -> str:
    """The token of ``Authorization: Bearer <token>``; ``token_invalid`` without one."""
    token = bearer_token(authorization)
    if token is None:
        raise TokenInvalid(NO_TOKEN)
    return token


def revocation_token(content_type: str, body: bytes) -> str:
    """The ``token`` of an RFC 7009 revocation request, a form or JSON (``token_type_hint`` is ignored);
    ``invalid_request`` when the body is neither or has none."""
    token: object = None
    try:
        if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            token = parse_qs(body.decode(), max_num_fields=4).get("token", [None])[0]
        else:
            data = json.loads(body)
            token = data.get("token") if isinstance(data, dict) else None
    except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deep
        raise InvalidRequest("The body is neither a form nor JSON.") from exc
    if not isinstance(token, str) or not token:
        raise InvalidRequest("The token parameter is missing.")
    return token


def bearer_token_if_any(authorization: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None for no header or another scheme (Basic, say),
    which another authentication may handle."""
    if authorization is None or authorization.partition(" ")[0].lower() != "bearer":
        return None
    return bearer_token(authorization)
