"""The answer to a login or a refresh, decided without I/O: its body, its headers and, in cookie mode, the
refresh cookie; and the answer of a call that ends sessions (:func:`ended_reply`), which clears the cookie.

``keyturn serve`` (``server/routes/_common.py``) and the Django app (``keyturn.django._http``) each turn a
:class:`TokenReply` into their framework's response and do nothing else, so both answer with the same
bytes: the refresh token in the body, or (cookie mode) only in an ``HttpOnly; Secure; SameSite=Strict``
cookie at the session routes' path (docs/contract.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookies import Morsel, SimpleCookie
from types import MappingProxyType
from typing import Final

from ..config import Settings
from ..http import refresh_cookie
from ..sessions import TokenPair
from .schemas import token_body

__all__ = [
    "CSRF_HEADER",
    "NO_STORE",
    "RefreshCookie",
    "TokenReply",
    "ended_reply",
    "token_reply",
    "wants_cookie",
]

CSRF_HEADER: Final = "X-Keyturn-CSRF"
"""Required (any value) on a call that uses the refresh cookie; sent, it also asks for cookie mode."""
NO_STORE: Final[Mapping[str, str]] = MappingProxyType({"Cache-Control": "no-store", "Pragma": "no-cache"})
"""The headers of every answer that carries a token or an error: read-only, since every reply shares it."""


def wants_cookie(settings: Settings, csrf_header: bool) -> bool:
    """Cookie mode for a call: always with ``COOKIE_MODE``, else when the client sends the CSRF header
    (``csrf_header``; a browser client in cookie mode always does)."""
    return settings.cookie_mode or csrf_header


@dataclass(frozen=True, slots=True)
class RefreshCookie:
    """The refresh cookie: ``HttpOnly``, ``Secure``, ``SameSite=Strict``, for ``max_age`` seconds at
    ``path``."""

    name: str
    value: str = field(repr=False)
    max_age: int
    path: str

    def morsel(self) -> Morsel[str]:
        """The cookie as the standard library writes it (Starlette and Django both write theirs so)."""
        jar: SimpleCookie = SimpleCookie()
        jar[self.name] = self.value
        morsel = jar[self.name]
        morsel["max-age"] = self.max_age
        if self.max_age <= 0:  # clearing it: browsers that ignore Max-Age still honour a date in the past
            morsel["expires"] = "Thu, 01 Jan 1970 00:00:00 GMT"
        morsel["path"] = self.path
        morsel["secure"] = True
        morsel["httponly"] = True
        morsel["samesite"] = "Strict"
        return morsel


@dataclass(frozen=True, slots=True)
class TokenReply:
    """A token response: ``body`` as JSON with ``headers``, and ``cookie`` to set when it is not None."""

    body: dict[str, object]
    headers: Mapping[str, str]
    cookie: RefreshCookie | None


def token_reply(
    pair: TokenPair,
    settings: Settings,
    *,
    csrf_header: bool,
    routes_path: str,
    headers: Mapping[str, str] | None = None,
) -> TokenReply:
    """The answer with ``pair``: in cookie mode (:func:`wants_cookie`) the refresh token only in the
    cookie, named and placed by ``keyturn.http.refresh_cookie`` for routes at ``routes_path``; always
    ``no-store``, with ``headers`` besides (``DPoP-Nonce``, say)."""
    cookie_mode = wants_cookie(settings, csrf_header)
    cookie = None
    if cookie_mode:
        name, path = refresh_cookie(settings.cookie_host_prefix, routes_path)
        cookie = RefreshCookie(name, pair.refresh_token, pair.refresh_expires_in, path)
    body = token_body(pair, include_refresh=not cookie_mode)
    return TokenReply(body, {**NO_STORE, **headers} if headers else NO_STORE, cookie)


def ended_reply(
    sids: list[str], settings: Settings, *, cookies: Mapping[str, str], routes_path: str
) -> TokenReply:
    """The answer of ``logout`` and ``logout-all``: the ended sessions, and the refresh cookie cleared
    (empty, ``Max-Age=0``, with the attributes it was set with) when the request carried one
    (``cookies``: the request's, by name)."""
    name, path = refresh_cookie(settings.cookie_host_prefix, routes_path)
    cookie = RefreshCookie(name, "", 0, path) if name in cookies else None
    return TokenReply({"revoked_sessions": sids}, NO_STORE, cookie)
