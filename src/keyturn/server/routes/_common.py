"""What the routes share: the runtime, the bearer token, the refresh token, token responses."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse

from ...config import Settings
from ...errors import InvalidRequest
from ...http import REFRESH_COOKIE, bearer_token_if_any, one_authorization, refresh_cookie, single_cookie
from ...sessions import TokenPair
from ...typing import JSONValue
from ..bodies import NOT_JSON, is_json, json_model
from ..proxies import client_address
from ..runtime import Runtime
from ..schemas import ErrorResponse, RefreshRequest, RevokeRequest
from ..token_reply import CSRF_HEADER, token_reply

if TYPE_CHECKING:
    from ..embed import Keyturn


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "invalid_request"),
        (401, "a definitive code: the session ends or the call was refused"),
        (500, "server_error: nothing was changed; retry with backoff"),
        (503, "server_error: the store is unavailable; retry with backoff"),
    )
}


UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: ERRORS[503]}

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "invalid_request: no such session of the caller's"}
}

NOT_AN_ACCESS_TOKEN: dict[int | str, dict[str, Any]] = {
    403: {
        "model": ErrorResponse,
        "description": "insufficient_scope: an access token was sent, not the refresh token",
    }
}

RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorResponse,
        "description": "rate_limited: too many calls; wait Retry-After seconds, then retry",
        "headers": {"Retry-After": {"description": "Whole seconds to wait", "schema": {"type": "integer"}}},
    }
}


def keyturn(request: Request) -> Keyturn:
    """The Keyturn the app serving ``request`` installed (``server/embed.py``)."""
    kt: Keyturn = request.app.state.keyturn
    return kt


def runtime(request: Request) -> Runtime:
    return keyturn(request).runtime


def authorization(request: Request) -> str | None:
    """The request's one ``Authorization`` header; ``invalid_request`` for more than one."""
    return one_authorization(request.headers.getlist("authorization"))


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None without the header or with another scheme,
    which presents no token (``token_invalid`` for ``Bearer`` without one)."""
    return bearer_token_if_any(authorization(request))


def refresh_token(request: Request, from_body: str | None) -> str | None:
    """The refresh token from the body or else the cookie (which needs the CSRF header)."""
    if from_body is not None:
        return from_body
    name = cookie_name(runtime(request))
    cookie = request.cookies.get(name)
    if cookie is None:
        return None
    single_cookie(request.headers.getlist("cookie"), name)
    if CSRF_HEADER not in request.headers:
        raise InvalidRequest(f"A call that uses the refresh cookie needs the {CSRF_HEADER} header.")
    return cookie


# -- what FastAPI cannot see of some routes, for the OpenAPI document (their ``openapi_extra``) --------

BEARER: dict[str, Any] = {"security": [{"bearer": []}]}
"""An operation that needs the caller's access token."""

COOKIE_MODE: dict[str, Any] = {
    "parameters": [
        {
            "name": REFRESH_COOKIE,
            "in": "cookie",
            "required": False,
            "schema": {"type": "string"},
            "description": "Cookie mode: the refresh token, when the body has none.",
        },
        {
            "name": CSRF_HEADER,
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "Required (any value) when the refresh cookie is used; it also asks for cookie "
            "mode: the new refresh token comes as the cookie, not in the body.",
        },
    ]
}
"""The refresh cookie and the CSRF header of a call that may take the refresh token from the cookie."""

NAMED_BY_EITHER: dict[str, Any] = {"security": [{"bearer": []}, {}], **COOKIE_MODE}
"""Logout: the session is named by the access token, or else by the refresh token."""

BY_REFRESH_TOKEN: dict[str, Any] = {"security": [{"refresh": []}, {}], **COOKIE_MODE}
"""Listing and ending sessions: the refresh token (body, cookie, or ``Authorization: Bearer``), never an
access token (403 ``insufficient_scope``): resource servers receive access tokens, never refresh tokens."""

DPOP_HEADER: dict[str, Any] = {
    "name": "DPoP",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 4096},
    "description": "A DPoP proof (RFC 9449) for this call: a session started with one is bound to its key, "
    "and each refresh of a bound session needs one by that key (docs/oauth.md#dpop).",
}

REFRESH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": RefreshRequest.model_json_schema()}},
    },
    "parameters": [*COOKIE_MODE["parameters"], DPOP_HEADER],
}
"""``/auth/refresh``, which parses its body itself (:func:`refresh_request`)."""

REVOKE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": RevokeRequest.model_json_schema()}
            for media in ("application/x-www-form-urlencoded", "application/json")
        },
    }
}
"""``/auth/revoke``, which reads a form or JSON itself (RFC 7009)."""


def refresh_request(request: Request, raw: bytes) -> RefreshRequest | None:
    """The body ``raw`` of a call that may carry a refresh token: empty, or JSON ``{"refresh_token"}``.

    What FastAPI's body parameter does, for the hot path (``server/shortcut.py`` calls the endpoint past
    FastAPI's machinery): pydantic parses and validates the bytes in one step. The answers are FastAPI's:
    400 ``invalid_request`` for a body that is not declared JSON, is not JSON, or is not of this shape.
    """
    return json_model(raw, request.headers.get("content-type", ""), RefreshRequest)


def login_credentials(request: Request, raw: bytes) -> dict[str, JSONValue]:
    """The login body ``raw``: a JSON object, whose fields the login decides (400 ``invalid_request``
    for anything else). A body must say it is JSON (docs/contract.md): one without a ``Content-Type`` is
    refused, as on every other route and in the Django app."""
    if not is_json(request.headers.get("content-type", "")):
        raise InvalidRequest(NOT_JSON)
    try:
        credentials = json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
        raise InvalidRequest("The request body is not JSON.") from None
    if not isinstance(credentials, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return credentials


def _not_json(constant: str) -> object:
    raise ValueError(f"{constant} is not JSON")  # Python's parser takes NaN and Infinity; JSON has neither


def require_refresh_token(request: Request, from_body: str | None) -> str:
    token = refresh_token(request, from_body)
    if token is None:
        raise InvalidRequest("No refresh token was given.")
    return token


def cookie_name(rt: Runtime) -> str:
    return refresh_cookie(rt.settings.cookie_host_prefix, rt.settings.route_prefix)[0]


_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


class TokenJSONResponse(JSONResponse):
    """Starlette's ``JSONResponse``, byte for byte, with its JSON encoder made once: ``render`` calls
    ``json.dumps`` with options of its own, which builds an encoder anew for every answer."""

    def render(self, content: Any) -> bytes:
        return _ENCODE(content).encode("utf-8")


def token_response(rt: Runtime, request: Request, pair: TokenPair) -> JSONResponse:
    """The login or refresh answer (``server/token_reply.py``) as a Starlette response."""
    reply = token_reply(
        pair,
        rt.settings,
        csrf_header=CSRF_HEADER in request.headers,
        routes_path=rt.settings.route_prefix,
        headers=rt.dpop.nonce_headers(),
    )
    response = TokenJSONResponse(reply.body, headers=reply.headers)
    if reply.cookie is not None:
        response.headers.append("set-cookie", reply.cookie.morsel().OutputString())
    return response


def client_ip(request: Request, settings: Settings) -> str | None:
    """The client's address: the peer's, or from ``X-Forwarded-For`` when the peer is a trusted proxy
    (``settings.trusted_proxies``)."""
    peer = request.client.host if request.client else None
    trusted = settings.trusted_proxies
    if not trusted:
        return peer
    return client_address(peer, request.headers.getlist("x-forwarded-for"), trusted)
