"""The one error renderer: a ``KeyturnError`` to the JSON body and, on 401, ``WWW-Authenticate``.

On the OAuth 2.0 routes (:class:`OAuthRoute`) the same renderer answers in RFC 6749 section 5.2's form,
with Keyturn's own code beside the RFC's (``keyturn.http.error_body``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..errors import InvalidRequest, KeyturnError, ServerError
from ..http import error_body, error_headers, error_status

logger = logging.getLogger("keyturn.server")


def render(error: KeyturnError, status: int | None = None, *, oauth: bool = False) -> JSONResponse:
    """The response for ``error``: the only place an error body is made (``oauth``: RFC 6749's form)."""
    return JSONResponse(
        error_body(error, oauth=oauth),
        status_code=status or error_status(error, oauth=oauth),
        headers=error_headers(error, oauth=oauth),
    )


def respond(exc: KeyturnError, *, oauth: bool = False) -> JSONResponse:
    """The answer to a ``KeyturnError`` an endpoint raised (a server error is logged, by type only)."""
    if isinstance(exc, ServerError):
        logger.error("store or service failure: %s", type(exc.__cause__ or exc).__name__)
    return render(exc, oauth=oauth)


async def _keyturn_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KeyturnError)
    return respond(exc)


def malformed(errors: Sequence[Any]) -> InvalidRequest:
    """The error for a body that failed validation (FastAPI's or pydantic's list of errors)."""
    # Say where and what, never echo the input: it may hold a password or a token.
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body') or 'body'}: "
        f"{err.get('msg', 'invalid')}"
        for err in errors[:5]
    )
    return InvalidRequest(f"The request is malformed: {problems}.")


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return render(malformed(exc.errors()))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    # Unknown path, wrong method and the like: the caller has to fix the call.
    return render(InvalidRequest(str(exc.detail)), status=exc.status_code)


async def _client_gone(_: Request, exc: Exception) -> JSONResponse:
    # The client closed mid-body, or keyturn serve refused the body (malformed, too slow) and has answered
    # in its place: this answer goes nowhere, and it is no server error.
    assert isinstance(exc, ClientDisconnect)
    logger.debug("client disconnected before its request body arrived")
    return render(InvalidRequest("The request body did not arrive."))


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    logger.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
    return render(ServerError())


class KeyturnRoute(APIRoute):
    """A route of Keyturn's that answers its own errors with the one error body, whatever app it is in.

    An application that includes Keyturn's routers keeps its own error handlers for its own routes;
    these answer as ``keyturn serve`` does (400 ``invalid_request`` for a malformed call, never a 422).
    Anything else (a bug) goes on to the app's own server-error handling, as from any of its routes.
    FastAPI's documented way to customise a route: ``APIRoute.get_route_handler``.
    """

    oauth: bool = False
    """Errors in RFC 6749's form (:class:`OAuthRoute`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            oauth = self.oauth
            try:
                return await handler(request)
            except KeyturnError as exc:
                return respond(exc, oauth=oauth)
            except RequestValidationError as exc:
                return render(malformed(exc.errors()), oauth=oauth)
            except StarletteHTTPException as exc:
                return render(InvalidRequest(str(exc.detail)), status=exc.status_code, oauth=oauth)

        return answer

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A known path with another method: Starlette raises its 405 to the app's handlers; answered here.
        if self.methods and scope["method"] not in self.methods:
            await render(InvalidRequest("Method Not Allowed"), status=405, oauth=self.oauth)(
                scope, receive, send
            )
            return
        await super().handle(scope, receive, send)


class OAuthRoute(KeyturnRoute):
    """A route of the OAuth 2.0 surface: its errors in RFC 6749 section 5.2's form."""

    oauth = True


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """404 ``invalid_request``: what an unknown path under Keyturn's prefix answers in any app."""
    await render(InvalidRequest("Not Found"), status=404)(scope, receive, send)


async def oauth_not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """404 ``invalid_request`` in RFC 6749's form: an unknown path under ``/oauth``."""
    await render(InvalidRequest("Not Found"), status=404, oauth=True)(scope, receive, send)


def install(app: FastAPI) -> None:
    """Make every error of ``app`` go through :func:`render`."""
    app.add_exception_handler(KeyturnError, _keyturn_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
