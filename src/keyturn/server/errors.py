"""The one error renderer: a ``KeyturnError`` to the JSON body and, on 401, ``WWW-Authenticate``.

On the OAuth 2.0 routes (:class:`OAuthRoute`) the same renderer answers in RFC 6749 section 5.2's form,
with Keyturn's own code beside the RFC's (``keyturn.http.OAUTH_ERRORS``).

This is the FastAPI/Starlette adapter of the framework-neutral parts, which the Django app shares without
importing FastAPI: the error forms (``keyturn.http.ErrorForm``: body, status, headers) and the error for
a malformed body (``keyturn.server.bodies.malformed``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from ..errors import InvalidRequest, KeyturnError, ServerError
from ..http import KEYTURN_ERRORS, OAUTH_ERRORS, ErrorForm
from .bodies import malformed

logger = logging.getLogger("keyturn.server")


@dataclass(frozen=True, slots=True)
class Renderer:
    """Errors as JSON responses in one :class:`~keyturn.http.ErrorForm`: the only place an error body is
    made. :data:`KEYTURN` for Keyturn's routes, :data:`OAUTH` (RFC 6749's form) for the OAuth 2.0 ones;
    each route holds the one it answers with (:class:`KeyturnRoute`)."""

    form: ErrorForm

    def render(
        self, error: KeyturnError, status: int | None = None, headers: Mapping[str, str] | None = None
    ) -> JSONResponse:
        """The response for ``error`` (with ``status`` in place of its own, and ``headers`` beside its own:
        a 405's ``Allow``)."""
        form = self.form
        return JSONResponse(
            form.body(error),
            status_code=status or form.status(error),
            headers={**form.headers(error), **(headers or {})},
        )

    def respond(self, exc: KeyturnError) -> JSONResponse:
        """The answer to a ``KeyturnError`` an endpoint raised (a server error is logged, by type only)."""
        if isinstance(exc, ServerError):
            logger.error("store or service failure: %s", type(exc.__cause__ or exc).__name__)
        return self.render(exc)

    def answer(self, exc: Answered) -> JSONResponse:
        """The answer to an error of the call: Keyturn's own, a body that failed validation (400, never
        FastAPI's 422), or Starlette's ``HTTPException`` (its status, as ``invalid_request``, and its
        headers: a 405's ``Allow``)."""
        if isinstance(exc, KeyturnError):
            return self.respond(exc)
        if isinstance(exc, RequestValidationError):
            return self.render(malformed(exc.errors()))
        return self.render(InvalidRequest(str(exc.detail)), status=exc.status_code, headers=exc.headers)

    def presented(self, authorization: str | None) -> Renderer:
        """This renderer for a request whose ``Authorization`` is ``authorization``
        (``keyturn.http.ErrorForm.presented``: a token presented as ``DPoP`` is refused in that scheme)."""
        form = self.form.presented(authorization)
        return self if form is self.form else Renderer(form)

    async def not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        """404 ``invalid_request``: an unknown path under the routes' prefix."""
        await self.render(InvalidRequest("Not Found"), status=404)(scope, receive, send)


Answered = KeyturnError | RequestValidationError | StarletteHTTPException
"""The errors a :class:`Renderer` answers as the call's fault."""


KEYTURN: Final = Renderer(KEYTURN_ERRORS)
OAUTH: Final = Renderer(OAUTH_ERRORS)

render = KEYTURN.render
respond = KEYTURN.respond
not_found = KEYTURN.not_found
"""404 ``invalid_request``: what an unknown path under Keyturn's prefix answers in any app."""
oauth_not_found = OAUTH.not_found
"""404 ``invalid_request`` in RFC 6749's form: an unknown path under ``/oauth``."""


async def _answer(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Answered)
    return KEYTURN.answer(exc)


def client_gone() -> JSONResponse:
    """The answer to a ``ClientDisconnect`` while the body was read: the client closed mid-body, or
    keyturn serve refused the body (malformed, too slow) and has answered in its place. This answer goes
    nowhere, and it is no server error."""
    logger.debug("client disconnected before its request body arrived")
    return render(InvalidRequest("The request body did not arrive."))


async def _client_gone(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ClientDisconnect)
    return client_gone()


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

    renderer: ClassVar[Renderer] = KEYTURN
    """The form its errors take (:class:`OAuthRoute`: RFC 6749's)."""
    resource: ClassVar[bool] = False
    """Whether it takes an access token, ``Bearer`` or ``DPoP``: then its refusals are challenged in the
    scheme the request used (:meth:`Renderer.presented`)."""

    @classmethod
    def answering(cls, form: ErrorForm) -> type[KeyturnRoute]:
        """This route class for a route that takes an access token, ``Bearer`` or ``DPoP``, with its errors
        in ``form`` (``KEYTURN_ERRORS.at_resource(algs)``, ``keyturn.http.ErrorForm``), presented as the
        request presented its token."""
        named = {"renderer": Renderer(form), "resource": True}
        return cast("type[KeyturnRoute]", type(cls.__name__, (cls,), named))

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        renderer, resource = self.renderer, self.resource

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except (KeyturnError, RequestValidationError, StarletteHTTPException) as exc:
                if resource:
                    return renderer.presented(request.headers.get("authorization")).answer(exc)
                return renderer.answer(exc)

        return answer

    def allowed(self) -> set[str]:
        """The methods it answers: its own, and HEAD beside GET (RFC 9110 section 9.3.2: a HEAD is a GET
        without the body, which the server leaves out)."""
        methods = set(self.methods or ())
        return methods | {"HEAD"} if "GET" in methods else methods

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is Match.PARTIAL and scope["method"] in self.allowed():
            return Match.FULL, child_scope
        return match, child_scope

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A known path with another method: Starlette raises its 405 to the app's handlers; answered here,
        # with the Allow header RFC 9110 section 15.5.6 requires.
        allowed = self.allowed()
        if allowed and scope["method"] not in allowed:
            refusal = self.renderer.render(
                InvalidRequest("Method Not Allowed"),
                status=405,
                headers={"Allow": ", ".join(sorted(allowed))},
            )
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


class OAuthRoute(KeyturnRoute):
    """A route of the OAuth 2.0 surface: its errors in RFC 6749 section 5.2's form."""

    renderer = OAUTH


def install(app: FastAPI) -> None:
    """Make every error of ``app`` go through :func:`render`."""
    for answered in (KeyturnError, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(answered, _answer)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
