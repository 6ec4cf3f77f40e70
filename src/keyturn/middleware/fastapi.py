"""FastAPI: ``Depends(require_token(verifier, scopes=...))`` and the error handler that renders its refusals.

::

    verifier = AccessTokenVerifier.for_service("http://127.0.0.1:8000")
    app = FastAPI()
    install(app, verifier)

    @app.get("/orders")
    async def orders(token: AccessClaims = Depends(require_token(verifier, scopes=["orders:read"]))): ...

``install`` makes refusals answer with Keyturn's error body (docs/contract.md) (without it FastAPI's own
handler answers ``{"detail": "<code>: <description>"}``, with the same status and ``WWW-Authenticate``:
the code is in the body, as a request without a token gets the bare challenge), answers a ``KeyturnError``
raised in the app's own routes (``VerifierUnavailable`` from a direct ``verifier.verify``, say) with its
status, body and headers instead of a 500, and closes the verifier when the app shuts down. Behind
:class:`~keyturn.middleware.asgi.KeyturnMiddleware` the dependency reuses the token the middleware verified.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import HTTPException
from fastapi.responses import JSONResponse
from starlette.applications import Starlette

from ..errors import ClientError, KeyturnError, ServerError
from ..http import KEYTURN_ERRORS, REALM, ErrorForm, error_body
from ..tokens import AccessClaims
from ._bearer import BearerCheck, BearerRequest, is_dpop
from ._grants import require_grants
from .verifier import AccessTokenVerifier

__all__ = ["TokenRefused", "add_error_handlers", "install", "require_token"]


class TokenRefused(HTTPException):
    """A refusal, as FastAPI's ``HTTPException`` so that it answers sensibly even without :func:`install`."""

    def __init__(self, error: KeyturnError, realm: str = REALM, form: ErrorForm = KEYTURN_ERRORS) -> None:
        # "<code>: <description>": FastAPI's own handler answers {"detail"} alone, and the challenge of a
        # request without a token carries no code (RFC 6750 section 3.1).
        super().__init__(error.status, f"{error.code}: {error.detail}", form.headers(error, realm))
        self.error = error


def require_token(
    verifier: AccessTokenVerifier,
    *,
    scopes: Iterable[str] = (),
    claims: Mapping[str, Any] | None = None,
    realm: str = REALM,
) -> Callable[[Request], Awaitable[AccessClaims]]:
    """A dependency giving the request's verified access token, which must carry ``scopes`` and ``claims``."""
    wanted = tuple(scopes)
    check = BearerCheck(verifier)
    # DPoP challenged too while the verifier takes it; in DPoP alone for a token presented so.
    errors = verifier.errors

    async def dependency(request: Request) -> AccessClaims:
        try:
            verified: AccessClaims | None = None
            if request.scope.get("keyturn.verifier") is verifier:  # the middleware checked it already
                verified = request.scope.get("keyturn.token")
            if verified is None:
                verified = await check.averify(_bearer_request(request))
                assert verified is not None  # a token is required and no path is exempt
            return require_grants(verified, wanted, claims)
        except KeyturnError as error:
            form = errors.presented(request.headers.get("authorization"))
            raise TokenRefused(error, realm, form) from error

    return dependency


def _bearer_request(request: Request) -> BearerRequest:
    """The request's ``Authorization``, and with a DPoP token its method, URL (without query) and
    ``DPoP`` headers."""
    found = request.headers.getlist("authorization")
    authorization, repeated = (found[0] if found else None), len(found) > 1
    if not is_dpop(authorization):
        return BearerRequest(authorization, repeated=repeated)
    url = str(request.url.replace(query=None, fragment=None))
    proofs = tuple(request.headers.getlist("dpop"))
    return BearerRequest(authorization, "", request.method, url, proofs, repeated)


logger = logging.getLogger("keyturn.middleware")


async def _refused(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TokenRefused)
    return JSONResponse(error_body(exc.error), status_code=exc.status_code, headers=exc.headers)


def add_error_handlers(app: Starlette, form: ErrorForm = KEYTURN_ERRORS) -> None:
    """Answer ``require_token``'s refusals, and any ``KeyturnError`` an app's own route raises, with
    Keyturn's error body, status and headers in ``form``, never a 500. The Python client's
    ``ClientError`` (no wire code: the app's own bug) is left a plain error. Shared by this module's
    :func:`install` and ``keyturn.fastapi.install``."""

    async def keyturn_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, KeyturnError)
        if isinstance(exc, ClientError):
            raise exc
        if isinstance(exc, ServerError):  # logged as Keyturn's own routes log it: by type only
            logger.error("store or service failure: %s", type(exc.__cause__ or exc).__name__)
        answered = form.presented(request.headers.get("authorization"))  # a DPoP request: its scheme
        return JSONResponse(
            answered.body(exc), status_code=answered.status(exc), headers=answered.headers(exc)
        )

    app.add_exception_handler(TokenRefused, _refused)
    app.add_exception_handler(KeyturnError, keyturn_error)


def install(app: FastAPI, verifier: AccessTokenVerifier | None = None) -> None:
    """Render refusals, and ``KeyturnError`` raised in the app's routes, with Keyturn's error body (a 401
    challenging ``DPoP`` too while ``verifier`` takes it); close ``verifier`` when ``app`` shuts down."""
    add_error_handlers(app, verifier.errors if verifier else KEYTURN_ERRORS)
    if verifier is None:
        return
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        try:
            async with inner(app_) as state:
                yield state
        finally:
            await verifier.aclose()

    app.router.lifespan_context = lifespan
