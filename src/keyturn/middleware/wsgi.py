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
from ..http import error_response, joined_authorizations
from ._bearer import BearerGuard, BearerRequest, is_dpop

__all__ = ["KeyturnWSGIMiddleware"]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class KeyturnWSGIMiddleware(BearerGuard[WSGIApp]):
    """Wrap ``app``; ``required`` and ``exempt`` work as in the ASGI :class:`KeyturnMiddleware`."""

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = _request(environ)
        try:
            environ["keyturn.token"] = self.check.verify(request)
        except KeyturnError as error:
            form = self.errors.presented(request.authorization)
            status, headers, body = error_response(error, self.realm, form)
            start_response(f"{status} {HTTPStatus(status).phrase}", headers)
            return [body]
        return self.app(environ, start_response)


def _request(environ: dict[str, Any]) -> BearerRequest:
    """The request's ``Authorization`` and path, and with a DPoP token its method, URL (without query)
    and ``DPoP`` header."""
    authorization = environ.get("HTTP_AUTHORIZATION")
    repeated = joined_authorizations(authorization)  # WSGI servers join repeated headers with commas
    path = environ.get("PATH_INFO", "")
    if not is_dpop(authorization):
        return BearerRequest(authorization, path, repeated=repeated)
    proof = environ.get("HTTP_DPOP")
    method, url = environ.get("REQUEST_METHOD", ""), request_uri(environ, include_query=False)
    return BearerRequest(authorization, path, method, url, (proof,) if proof else (), repeated)
