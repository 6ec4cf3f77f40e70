"""Keyturn inside an app: the session routes, their runtime and the application's hooks, in one object.

:class:`Keyturn` is what ``keyturn.fastapi.install`` puts in an application and what ``create_app``
(``keyturn serve``) is built on: one set of routes, one hot path, one lifespan, so the service and the
embedded form cannot drift. :meth:`Keyturn.install` adds to an app

- the session routes under the prefix (``/auth``) and ``/.well-known/jwks.json``, each answering its own
  errors with the one error body (``KeyturnRoute``), whatever handlers the app has;
- the OAuth 2.0 surface: ``/oauth/*`` and ``/.well-known/oauth-authorization-server`` (``OAuthRoute``:
  errors in RFC 6749's form);
- ``POST {prefix}/refresh`` straight to its endpoint (``shortcut.py``), inside the app's own middleware
  (``keyturn serve``'s app answers it in front of every layer: ``front.py``), and the body size cap on
  the prefix's calls alone;
- to the app's lifespan: the store opened (and the keys loaded) before the app's own start-up runs,
  the periodic chores while it serves, the store closed after the app's own shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, Literal

from argon2 import PasswordHasher
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.applications import Starlette
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from .._reload import FreshReads
from ..config import Settings, load_settings
from ..events import subscribe
from ..http import KEYTURN_ERRORS
from ..oauth import METADATA_PATH, OAUTH_PREFIX, dpop_signing_algs
from ..sessions import TokenPair
from ..typing import Clock, JSONValue
from .background import chores
from .body_limit import BodySizeLimit
from .errors import KeyturnRoute, not_found, oauth_not_found
from .hooks import (
    AppLogin,
    AuthenticateHook,
    ClaimsHook,
    Login,
    SubjectCheckHook,
    UserLogin,
    begin,
    claims_source,
    subject_check,
)
from .metrics import Metrics
from .routes import auth, meta, oauth, revocations
from .routes._common import token_response
from .runtime import Runtime, open_runtime
from .shortcut import Shortcut, route_path

__all__ = ["MAX_BODY_BYTES", "Keyturn"]

JWKS_PATH = "/.well-known/jwks.json"

MAX_BODY_BYTES = 256 * 1024
"""Bodies over this are refused (413, ``invalid_request``) before they are read whole. Large enough that
an oversized token in a body still reaches the token checks and gets ``token_invalid``."""


class Keyturn:
    """Keyturn's routes and runtime for one application.

    ``authenticate`` makes ``POST {prefix}/login`` (without it there is no login route: sessions start
    from the application's own routes, :meth:`start_session`); ``subject_check`` and ``claims`` are asked
    on refresh (see ``hooks.py``). ``login_schema`` documents the login body in the OpenAPI document.
    ``users=True`` is ``keyturn serve``'s login, the built-in user store (and ``subject_check="users"``
    its subject check).

    With ``runtime`` it serves that runtime (and leaves closing it to the caller); otherwise it opens one
    from ``settings`` when the app starts and closes it when the app stops.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        authenticate: AuthenticateHook | None = None,
        subject_check: SubjectCheckHook | Literal["users"] | None = None,
        claims: ClaimsHook | None = None,
        prefix: str | None = None,
        login_schema: Mapping[str, Any] | None = None,
        users: bool = False,
        runtime: Runtime | None = None,
        clock: Clock | None = None,
        hasher: PasswordHasher | None = None,
    ) -> None:
        if users and authenticate is not None:
            raise ValueError("a Keyturn logs in with the built-in users or with authenticate, not both")
        settings = runtime.settings if runtime is not None else settings or load_settings()
        if prefix is not None:
            settings = Settings.model_validate({**_fields(settings), "route_prefix": prefix})
        self.settings = settings
        self.metrics = Metrics()
        self.login: Login | None = (
            UserLogin() if users else AppLogin(authenticate, login_schema) if authenticate else None
        )
        self._subject_check = subject_check
        self._claims = claims
        self._given = runtime
        self._clock = clock
        self._hasher = hasher
        self._runtime: Runtime | None = runtime
        if runtime is not None:
            self._wire(runtime)
        self.jwks_reads = FreshReads(lambda: meta.read_jwks(self.runtime.store))
        self.router = APIRouter()
        """The session routes under the prefix, and the JWKS."""
        prefix = settings.route_prefix
        # The routes that take an access token challenge DPoP too while it is on (RFC 9449 section 7.2).
        resource = KeyturnRoute.answering(KEYTURN_ERRORS.at_resource(dpop_signing_algs(settings)))
        self.router.include_router(
            auth.build_router(self.login.schema if self.login else None, resource), prefix=prefix
        )
        self.router.include_router(revocations.router, prefix=prefix)
        self.router.include_router(meta.jwks_router)
        self.router.include_router(oauth.router)

    @property
    def runtime(self) -> Runtime:
        """The store, keys and sessions (``runtime.sessions``), once the app has started."""
        rt = self._runtime
        if rt is None:
            raise RuntimeError("Keyturn has not started: it opens its store when the app starts (lifespan)")
        return rt

    # -- the app's own routes -------------------------------------------------------------------

    async def start(self, request: Request, subject: str, *, client_id: str | None = None) -> TokenPair:
        """Start a session of ``subject`` (whom the application has authenticated) for the caller of
        ``request``; its access tokens carry ``claims(subject)``. ``client_id``: the registered OAuth
        client the session is for (``keyturn clients``; default the built-in ``keyturn``)."""
        return await begin(self.runtime, request, subject, client_id)

    async def start_session(
        self, request: Request, subject: str, *, client_id: str | None = None
    ) -> JSONResponse:
        """:meth:`start`, answered as the login route answers: the token response, or in cookie mode the
        refresh token as its cookie (the route's own response, to return as it is)."""
        return token_response(self.runtime, request, await self.start(request, subject, client_id=client_id))

    # -- in an app ------------------------------------------------------------------------------

    def install(self, app: Starlette, *, limit_bodies: bool = True) -> Keyturn:
        """Serve Keyturn in ``app`` (see the module); ``limit_bodies=False`` leaves the body cap to the
        caller (``keyturn serve`` caps every call)."""
        if getattr(app.state, "keyturn", None) is not None:
            raise ValueError("this app already has a Keyturn installed")
        app.state.keyturn = self
        if isinstance(app, FastAPI):
            app.router.routes.extend(self.router.routes)  # what app.include_router(self.router) does
            router = app.router
        else:
            # FastAPI's routes need FastAPI's own middleware: a plain Starlette app gets them as a FastAPI
            # app of their own, mounted for Keyturn's paths alone.
            routes = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
            routes.state.keyturn = self
            routes.router.routes.extend(self.router.routes)
            app.router.routes.append(_KeyturnPaths(self.settings.route_prefix, routes))
            router = routes.router
        # When no route matches: an unknown path under the prefix is Keyturn's 404, anything else the app's.
        router.default = _PrefixNotFound(self.settings.route_prefix, router.default)
        # Added before the body size limit, so inside it; both inside the app's error middleware.
        app.add_middleware(
            Shortcut, endpoints={("POST", f"{self.settings.route_prefix}/refresh"): auth.refresh}
        )
        if limit_bodies:
            app.add_middleware(_PrefixLimit, prefix=self.settings.route_prefix, max_bytes=MAX_BODY_BYTES)
        inner = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(app_: Any) -> AsyncIterator[Any]:
            async with self.running(), inner(app_) as state:
                yield state

        app.router.lifespan_context = lifespan
        return self

    def running(self) -> AbstractAsyncContextManager[None]:
        """While the app serves: the runtime open, the chores running, the metrics counting."""
        return self._running()

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.callback(subscribe(self.metrics.on_event))
            if self._given is None:
                opened = await open_runtime(
                    self.settings,
                    clock=self._clock,
                    hasher=self._hasher,
                    subject_check="users" if self._subject_check == "users" else None,
                )
                stack.push_async_callback(self._closed, opened)
                self._wire(opened)
                self._runtime = opened
            await stack.enter_async_context(chores(self.runtime))
            await stack.enter_async_context(self.serving())
            yield

    def serving(self) -> AbstractAsyncContextManager[None]:
        """What else runs while the app serves (a subclass's verifier); nothing here."""
        return _nothing()

    def _wire(self, rt: Runtime) -> None:
        check = self._subject_check
        if check is not None and check != "users":
            rt.sessions.subject_check = subject_check(check)
        if self._claims is not None:
            rt.sessions.claims_source = claims_source(self._claims)

    async def _closed(self, rt: Runtime) -> None:
        self._runtime = None
        await rt.close()


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


def _fields(settings: Settings) -> dict[str, JSONValue | object]:
    return {name: getattr(settings, name) for name in type(settings).model_fields}


def under(path: str, prefix: str) -> bool:
    """Whether ``path`` is Keyturn's: ``prefix`` itself or below it."""
    return path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/")


class _KeyturnPaths(Mount):
    """``app`` mounted at the root for Keyturn's paths only: the prefix's and the JWKS."""

    def __init__(self, prefix: str, app: ASGIApp) -> None:
        super().__init__("", app=app)
        self.prefix = prefix

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http":
            path = route_path(scope)
            if under(path, self.prefix) or under(path, OAUTH_PREFIX) or path in (JWKS_PATH, METADATA_PATH):
                return super().matches(scope)
        return Match.NONE, {}


class _PrefixNotFound:
    """A router's fallback: :func:`~keyturn.server.errors.not_found` for the prefix's paths, else ``app``."""

    def __init__(self, prefix: str, app: ASGIApp) -> None:
        self.prefix = prefix
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and under(route_path(scope), self.prefix):
            await not_found(scope, receive, send)
        elif scope["type"] == "http" and under(route_path(scope), OAUTH_PREFIX):
            await oauth_not_found(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class _PrefixLimit:
    """:class:`BodySizeLimit` on the calls under ``prefix`` and ``/oauth`` alone: the app's own routes keep
    their own."""

    def __init__(self, app: ASGIApp, prefix: str, max_bytes: int) -> None:
        self.app = app
        self.limited = BodySizeLimit(app, max_bytes)
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope) if scope["type"] == "http" else ""
        if scope["type"] == "http" and (under(path, self.prefix) or under(path, OAUTH_PREFIX)):
            await self.limited(scope, receive, send)
        else:
            await self.app(scope, receive, send)
