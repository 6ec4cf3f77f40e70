"""CORS for the token service's app (``KEYTURN_CORS_ORIGINS``): Starlette's own ``CORSMiddleware``.

Only the listed origins, exactly, and with credentials: cookie mode's refresh cookie goes with the calls of a
page on another origin of the same site (``app.example.com`` and ``auth.example.com``; a ``SameSite=Strict``
cookie never goes to another site). Cookie mode's CSRF defence rests on this list: ``X-Keyturn-CSRF`` is
no header a page may send to another origin until a preflight the service approves says so, and only a
listed origin's is approved. ``*`` is refused in the settings (``config._origin``).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from .token_reply import CSRF_HEADER

__all__ = ["ALLOWED_HEADERS", "ALLOWED_METHODS", "EXPOSED_HEADERS", "MAX_AGE", "with_cors"]

ALLOWED_METHODS = ("GET", "HEAD", "POST", "DELETE")
"""The routes' methods (every GET route answers HEAD too): a preflight asks for the method even when it is
one the browser needs no leave for, as it does for a GET with ``Authorization``."""
ALLOWED_HEADERS = ("Authorization", "Content-Type", "DPoP", CSRF_HEADER)
EXPOSED_HEADERS = ("DPoP-Nonce", "Retry-After", "WWW-Authenticate")
"""The answer headers a page's client reads, besides those every page may read."""
MAX_AGE = 600
"""Seconds a browser may keep a preflight's answer (Chromium keeps it at most 7200)."""


def with_cors(app: ASGIApp, origins: Sequence[str]) -> ASGIApp:
    """``app`` answering CORS for ``origins`` (``settings.cors_origins``); ``app`` itself when there are
    none, so a service without the setting sends no CORS header at all."""
    if not origins:
        return app
    return CORSMiddleware(
        app,
        allow_origins=tuple(origins),
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        allow_credentials=True,
        expose_headers=EXPOSED_HEADERS,
        max_age=MAX_AGE,
    )
