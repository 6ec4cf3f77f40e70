"""Keyturn inside a FastAPI (or Starlette) app: your users, your login, Keyturn's sessions.

::

    from fastapi import Depends, FastAPI
    from keyturn import fastapi as keyturn

    app = FastAPI()
    auth = keyturn.install(app, authenticate=check_password, claims=roles_of)

    @app.get("/orders")
    async def orders(token=Depends(keyturn.require_token(auth.verifier, claims={"role": "clerk"}))): ...

:func:`install` serves the session contract under ``prefix`` in the app itself (login through the app's
``authenticate``, refresh, logout, logout-all, sessions, revoke, revocations, and the JWKS), with the
same hot path as ``keyturn serve``. ``auth.verifier`` checks the app's own access tokens in-process: the
keys and the revocation feed are read from the app's store on the app's event loop, never over HTTP.
``docs/fastapi.md`` is the guide.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from starlette.applications import Starlette

from ..config import Settings
from ..errors import VerifierUnavailable
from ..middleware import Keys, StoreKeys, StoreRevocations
from ..middleware.fastapi import TokenRefused, add_error_handlers, require_token
from ..middleware.verifier import AccessTokenVerifier, verifier_options
from ..revocation import FeedPage
from ..server.embed import Keyturn
from ..server.hooks import AuthenticateHook, ClaimsHook, Credentials, SubjectCheckHook

__all__ = [
    "AuthenticateHook",
    "ClaimsHook",
    "Credentials",
    "EmbeddedKeyturn",
    "SubjectCheckHook",
    "TokenRefused",
    "install",
    "require_token",
]

T = TypeVar("T")


class EmbeddedKeyturn(Keyturn):
    """A :class:`~keyturn.server.embed.Keyturn` in an application, with a verifier for its own routes."""

    def __init__(self, settings: Settings | None = None, **options: Any) -> None:
        super().__init__(settings, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.verifier = AccessTokenVerifier(
            _AppKeys(self),
            _AppRevocations(self),
            # Every verifier setting, as for_service/for_store take them (DPOP: its refusals challenge
            # DPoP too, unless KEYTURN_DPOP=off).
            **verifier_options(self.settings, {"clock": self._clock}),
        )
        """Verifies the app's access tokens for ``Depends(require_token(auth.verifier, ...))``: offline,
        with the keys and revocations of the app's own store (polled every ``REVOCATION_POLL_INTERVAL``)."""

    def serving(self) -> AbstractAsyncContextManager[None]:
        return self._verifying()

    @asynccontextmanager
    async def _verifying(self) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        try:
            async with self.verifier:  # started here, so the first request does not wait for the keys
                yield
        finally:
            self._loop = None

    async def on_app_loop(self, read: Callable[[], Awaitable[T]]) -> T:
        """``read()`` on the app's event loop, where its store lives (the verifier runs on a thread)."""
        loop = self._loop
        if loop is None or self._runtime is None:
            raise VerifierUnavailable("The app is not serving.")
        if loop is asyncio.get_running_loop():
            return await read()

        async def run() -> T:
            return await read()

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), loop))


class _AppKeys:
    def __init__(self, keyturn: EmbeddedKeyturn) -> None:
        self._keyturn = keyturn

    async def fetch(self) -> Keys:
        kt = self._keyturn
        return await kt.on_app_loop(lambda: StoreKeys(kt.runtime.store).fetch())

    async def close(self) -> None:
        return None


class _AppRevocations:
    def __init__(self, keyturn: EmbeddedKeyturn) -> None:
        self._keyturn = keyturn

    async def since(self, seq: int) -> FeedPage:
        kt = self._keyturn

        def read() -> Awaitable[FeedPage]:
            rt = kt.runtime
            return StoreRevocations(rt.store, rt.sessions.clock.now).since(seq)

        return await kt.on_app_loop(read)

    async def close(self) -> None:
        return None


def install(
    app: Starlette,
    *,
    settings: Settings | None = None,
    authenticate: AuthenticateHook | None = None,
    subject_check: SubjectCheckHook | None = None,
    claims: ClaimsHook | None = None,
    prefix: str | None = None,
    login_schema: Mapping[str, Any] | None = None,
) -> EmbeddedKeyturn:
    """Serve Keyturn's sessions in ``app`` and return the handle (``auth.verifier``, ``auth.start_session``).

    ``settings`` default to the ``KEYTURN_*`` environment; ``prefix`` (default: their ``ROUTE_PREFIX``,
    ``/auth``) is where the session routes live. ``authenticate(request, credentials) -> subject | None``
    makes ``POST {prefix}/login`` (without it, sessions start only from the app's own routes, with
    ``auth.start_session``); ``subject_check(subject) -> bool`` is asked on every refresh;
    ``claims(subject) -> dict`` at login and at each refresh. Each is a plain function, sync (run in a
    worker thread) or async. ``login_schema`` (a JSON schema) documents the login body in the app's
    OpenAPI document.

    The store opens when the app starts (its lifespan, around the app's own) and closes when it stops.
    A ``KeyturnError`` raised in the app's own routes (``require_token``'s refusals, ``auth.start_session``
    refusing) is answered with Keyturn's error body and status, as Keyturn's routes answer it.
    """
    keyturn = EmbeddedKeyturn(
        settings,
        authenticate=authenticate,
        subject_check=subject_check,
        claims=claims,
        prefix=prefix,
        login_schema=login_schema,
    )
    keyturn.install(app)
    # require_token's refusals, and what Keyturn's calls raise in the app's own routes (auth.start_session
    # refusing a subject or a DPoP proof, the store out of reach): the wire code, as Keyturn's own routes
    # answer it, never a 500; the same handlers as the resource servers' install.
    add_error_handlers(app, keyturn.verifier.errors)
    return keyturn
