"""Django requests and responses in the shapes of ``keyturn serve`` (``keyturn.server.routes``).

Bodies, codes and headers are the service's: errors through the one renderer (``keyturn.http``), login
and refresh answers (their body, headers and refresh cookie) as ``keyturn.server.token_reply`` decides
them, the CSRF header by the same name.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponse
from pydantic import BaseModel

from ..config import Settings
from ..errors import InvalidRequest, KeyturnError, ServerError
from ..http import KEYTURN_ERRORS, REALM, ErrorForm, error_response, refresh_cookie, single_cookie
from ..server.bodies import json_model
from ..server.proxies import client_address
from ..server.token_reply import CSRF_HEADER, NO_STORE, TokenReply, ended_reply, token_reply
from ..sessions import TokenPair

__all__ = [
    "CSRF_HEADER",
    "MAX_BODY_BYTES",
    "NO_STORE",
    "client_ip",
    "ended_response",
    "error",
    "json_body",
    "respond",
    "token_response",
]

logger = logging.getLogger("keyturn.django")

MAX_BODY_BYTES = 256 * 1024
"""As ``keyturn serve``: bodies over this are refused (413, ``invalid_request``) before they are read."""

M = TypeVar("M", bound=BaseModel)


def respond(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> HttpResponse:
    """A JSON response written as Starlette's ``JSONResponse`` writes it."""
    content = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    response = HttpResponse(content, status=status, content_type="application/json")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def error(exc: KeyturnError, status: int | None = None, *, form: ErrorForm = KEYTURN_ERRORS) -> HttpResponse:
    """The one error body and its headers (``keyturn.http``), in ``form`` (``OAUTH_ERRORS`` on the OAuth
    2.0 routes); a server error is logged by type only."""
    if isinstance(exc, ServerError):
        logger.error("store or service failure: %s", type(exc.__cause__ or exc).__name__)
    code, headers, body = error_response(exc, REALM, form)
    response = HttpResponse(body, status=status or code)
    for name, value in headers:
        response[name] = value
    return response


def raw_body(request: HttpRequest) -> bytes:
    """The body, refused (413) when it is over :data:`MAX_BODY_BYTES` before it is read."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise _TooLarge()
    body = request.body
    if len(body) > MAX_BODY_BYTES:
        raise _TooLarge()
    return body


class _TooLarge(InvalidRequest):
    def __init__(self) -> None:
        super().__init__(f"The request body is over {MAX_BODY_BYTES} bytes.")


def too_large_status(exc: KeyturnError) -> int | None:
    return 413 if isinstance(exc, _TooLarge) else None


def json_body(request: HttpRequest, model: type[M], *, required: bool) -> M | None:
    """The body parsed as ``model`` (``keyturn.server.bodies.json_model``): empty is ``None``, or 400 if
    ``required``."""
    parsed = json_model(raw_body(request), request.META.get("CONTENT_TYPE", ""), model)
    if parsed is None and required:
        raise InvalidRequest("The request is malformed: body: Field required.")
    return parsed


def client_ip(request: HttpRequest, settings: Settings) -> str | None:
    """The peer's address, or ``X-Forwarded-For``'s client when the peer is one of ``TRUSTED_PROXIES``."""
    peer = request.META.get("REMOTE_ADDR") or None
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    return client_address(peer, [forwarded] if forwarded else [], settings.trusted_proxies)


def cookie(request: HttpRequest, settings: Settings) -> tuple[str, str]:
    """The refresh cookie's name and ``Path``, by ``keyturn serve``'s rule (``keyturn.http.refresh_cookie``):
    ``keyturn_refresh`` where the session routes are mounted (the calling route's directory, ``/api/auth``),
    or with ``COOKIE_HOST_PREFIX`` ``__Host-keyturn_refresh`` at ``/``."""
    return refresh_cookie(settings.cookie_host_prefix, _routes_path(request))


def token_response(
    request: HttpRequest, pair: TokenPair, settings: Settings, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """The login or refresh answer (``keyturn.server.token_reply``) as a Django response; ``headers``
    besides (``DPoP-Nonce``)."""
    reply = token_reply(
        pair,
        settings,
        csrf_header=CSRF_HEADER in request.headers,
        routes_path=_routes_path(request),
        headers=headers,
    )
    return _replied(reply)


def ended_response(request: HttpRequest, sids: list[str], settings: Settings) -> HttpResponse:
    """The answer of logout and logout-all (``keyturn.server.token_reply.ended_reply``): the refresh
    cookie cleared when the request carried one."""
    reply = ended_reply(sids, settings, cookies=request.COOKIES, routes_path=_routes_path(request))
    return _replied(reply)


def _routes_path(request: HttpRequest) -> str:
    return request.path.rsplit("/", 1)[0]


def _replied(reply: TokenReply) -> HttpResponse:
    response = respond(reply.body, headers=reply.headers)
    if reply.cookie is not None:
        response.cookies[reply.cookie.name] = reply.cookie.morsel()
    return response


def refresh_token(request: HttpRequest, from_body: str | None, settings: Settings) -> str | None:
    """The refresh token from the body, else the cookie (which needs the CSRF header)."""
    if from_body is not None:
        return from_body
    name = cookie(request, settings)[0]
    token = request.COOKIES.get(name)
    if token is None:
        return None
    single_cookie([request.META.get("HTTP_COOKIE", "")], name)
    if CSRF_HEADER not in request.headers:
        raise InvalidRequest(f"A call that uses the refresh cookie needs the {CSRF_HEADER} header.")
    return token


def require_refresh_token(request: HttpRequest, from_body: str | None, settings: Settings) -> str:
    token = refresh_token(request, from_body, settings)
    if token is None:
        raise InvalidRequest("No refresh token was given.")
    return token
