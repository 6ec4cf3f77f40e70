"""A pure WSGI middleware (Flask, Bottle, Pyramid, any WSGI app): only requests with a valid token get in.

The verified :class:`~keyturn.tokens.AccessClaims` are put in ``environ["keyturn.token"]`` (Flask:
``request.environ["keyturn.token"]``). Failures answer with Keyturn's error body (docs/contract.md) and
``WWW-Authenticate``; the app is not called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from wsgiref.util import request_uri

from ..errors import KeyturnError
from ..http import error_response
from ._bearer import BearerGuard, is_dpop

__all__ = ["KeyturnWSGIMiddleware"]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class KeyturnWSGIMiddleware(BearerGuard[WSGIApp]):
    """Wrap ``app``; ``required`` and ``exempt`` work as in the ASGI :class:`KeyturnMiddleware`."""

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            authorization = environ.get("HTTP_AUTHORIZATION")
            extra: dict[str, Any] = {}
            if is_dpop(authorization):
                proof = environ.get("HTTP_DPOP")
                url = request_uri(environ, include_query=False)
                extra = {
                    "method": environ.get("REQUEST_METHOD", ""),
                    "url": url,
                    "proofs": [proof] if proof else [],
                }
            environ["keyturn.token"] = self.check.verify(authorization, environ.get("PATH_INFO", ""), **extra)
        except KeyturnError as error:
            status, headers, body = error_response(error, self.realm)
            start_response(f"{status} {HTTPStatus(status).phrase}", headers)
            return [body]
        return self.app(environ, start_response)
