"""A pure WSGI middleware (Flask, Bottle, Pyramid, any WSGI app): only requests with a valid token get in.

The verified :class:`~keyturn.tokens.AccessClaims` are put in ``environ["keyturn.token"]`` (Flask:
``request.environ["keyturn.token"]``). Failures answer with the error body of DESIGN section 3 and
``WWW-Authenticate``; the app is not called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from ..errors import KeyturnError, TokenInvalid
from ..http import REALM, bearer_token, error_response
from ..tokens import AccessClaims
from ._paths import Exempt
from .verifier import AccessTokenVerifier

__all__ = ["KeyturnWSGIMiddleware"]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class KeyturnWSGIMiddleware:
    """Wrap ``app``; ``required`` and ``exempt`` work as in the ASGI :class:`KeyturnMiddleware`."""

    def __init__(
        self,
        app: WSGIApp,
        verifier: AccessTokenVerifier,
        *,
        required: bool = True,
        exempt: Iterable[str] = (),
        realm: str = REALM,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.required = required
        self.exempt = Exempt(exempt)
        self.realm = realm

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            environ["keyturn.token"] = self._authenticate(environ)
        except KeyturnError as error:
            status, headers, body = error_response(error, self.realm)
            start_response(f"{status} {HTTPStatus(status).phrase}", headers)
            return [body]
        return self.app(environ, start_response)

    def _authenticate(self, environ: dict[str, Any]) -> AccessClaims | None:
        if self.exempt and self.exempt(environ.get("PATH_INFO", "")):
            return None
        token = bearer_token(environ.get("HTTP_AUTHORIZATION"))
        if token is None:
            if self.required:
                raise TokenInvalid("No access token was given.")
            return None
        return self.verifier.verify(token)
