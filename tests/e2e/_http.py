"""HTTP helpers for end-to-end tests: logging in, checking error answers, never showing a token.

Assertion messages here describe a response by its status and error code only: a token response's body
is never put into a failure message, and tokens are compared by fingerprint (:func:`fp`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx

from .._challenges import ALGS, BARE, BARE_BEARER, challenges

ERROR_KEYS = {"error", "error_description", "retryable"}
TOKEN_KEYS = {
    "access_token",
    "refresh_token",
    "token_type",
    "expires_in",
    "refresh_expires_in",
    "session_id",
    "server_time",
}


def fp(token: str) -> str:
    """A short fingerprint of a token, safe to show in a failure message."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def why(response: httpx.Response) -> str:
    """Status and, for an error body, its code and description; any other body is withheld."""
    try:
        body = response.json()
    except ValueError:
        return f"status {response.status_code} (not JSON)"
    if isinstance(body, dict) and "error" in body and "access_token" not in body:
        return f"status {response.status_code} {body.get('error')}: {body.get('error_description')}"
    return f"status {response.status_code} (body withheld)"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(http: httpx.Client, username: str, password: str) -> dict[str, Any]:
    """Log in and return the token response (asserting that it is one)."""
    response = http.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, why(response)
    body: dict[str, Any] = response.json()
    return body


def refresh(http: httpx.Client, refresh_token: str) -> httpx.Response:
    return http.post("/auth/refresh", json={"refresh_token": refresh_token})


def refreshed(http: httpx.Client, refresh_token: str) -> dict[str, Any]:
    """Refresh and return the token response (asserting that it is one)."""
    response = refresh(http, refresh_token)
    assert response.status_code == 200, why(response)
    body: dict[str, Any] = response.json()
    return body


def me(http: httpx.Client, access_token: str) -> httpx.Response:
    return http.get("/auth/me", headers=bearer(access_token))


def assert_error(
    response: httpx.Response, status: int, code: str, *, bare: bool = False, dpop: bool | None = None
) -> dict[str, Any]:
    """``response`` is the documented error: status, the three-key body and, on 401, a challenge: the
    bare ``Bearer realm="keyturn"`` for a failed login; ``bare`` (a request that carried no token), the
    bare challenges of a resource, ``DPoP realm="keyturn", algs="ES256 EdDSA"`` after the Bearer one
    unless ``dpop`` is False (RFC 6750 section 3.1, RFC 9449 section 7.2); else ``error="invalid_token"``
    with the wire code in the Bearer challenge, followed by that DPoP one at a resource that takes DPoP
    (``dpop``; None: either, as at a route that is no resource)."""
    assert (response.status_code, _code(response)) == (status, code), why(response)
    body: dict[str, Any] = response.json()
    assert set(body) == ERROR_KEYS
    assert isinstance(body["error_description"], str)
    assert body["error_description"]
    assert body["retryable"] is (code in {"rate_limited", "server_error"})
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("cache-control") == "no-store"
    if status == 401:
        challenge = response.headers.get("www-authenticate", "")
        if code == "invalid_credentials":
            assert challenge == BARE_BEARER, challenge
        elif bare:
            assert challenge == (BARE_BEARER if dpop is False else BARE), challenge
        else:
            (scheme, params), *rest = challenges(challenge)
            assert (scheme, params["realm"]) == ("Bearer", "keyturn"), challenge
            # RFC 6750: a refused token is error="invalid_token"; the wire code leads the description.
            assert params["error"] == "invalid_token", challenge
            assert params["error_description"].startswith(f"{code}: "), challenge
            dpop_challenge = ("DPoP", {"realm": "keyturn", "algs": ALGS})
            allowed = ([], [dpop_challenge]) if dpop is None else ([dpop_challenge] if dpop else [],)
            assert rest in allowed, challenge
    return body


def _code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A JWT's header and payload, unverified (for building test tokens and reading claims)."""
    header, payload, _ = token.split(".")
    return _unb64_json(header), _unb64_json(payload)


def _unb64_json(segment: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return value
