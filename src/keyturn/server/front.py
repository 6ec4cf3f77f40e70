"""``keyturn serve``'s hot path, answered in front of FastAPI's and Starlette's layers.

In an application that embeds Keyturn (``Keyturn.install``) the refresh is answered by
:class:`~keyturn.server.shortcut.Shortcut`, a middleware inside the application's own: its CORS, logging or
authentication middleware sees the call as any other. ``keyturn serve``'s app (``create_app``) is all
Keyturn's, and the layers in front of its shortcut did nothing for the refresh but pass it on: FastAPI's
and Starlette's ``__call__``, the server-error middleware (and its ``send`` wrapper), FastAPI's exception
telemetry and its own body limit (both idle unless configured), the body size cap. :class:`Service`, the
app ``create_app`` returns, answers ``POST {prefix}/refresh`` before all of them (:class:`Direct`), doing
itself what they did for the call:

- the body size cap, by :meth:`BodySizeLimit.within <keyturn.server.body_limit.BodySizeLimit.within>` (the
  same one, from the stack);
- a ``KeyturnError`` rendered by :func:`~keyturn.server.errors.respond`, and a client gone mid-body
  answered quietly, as by the shortcut (:func:`~keyturn.server.shortcut.answer`);
- any other exception answered and logged by the app's own server-error handler (the one 500 body of
  ``errors.py``), unless the answer has started, and then raised on to the server, as Starlette's
  server-error middleware does;
- ``scope["app"]`` and the app's ``root_path``, as FastAPI's ``__call__`` sets them.

With ``CORS_ORIGINS`` set, CORS is answered in front of all of this (:meth:`Service.allow_origins`): the
refresh's answer, an error's and a 500's carry its headers, and a preflight never reaches the app.

It does so only while the built stack is exactly the known layers (:func:`direct`): an app with a
middleware added (or FastAPI's ``max_body_size``, its debug pages) keeps the whole path for every call, and
so does a call while FastAPI's native telemetry (OpenTelemetry) is on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from inspect import iscoroutinefunction
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .body_limit import BodySizeLimit
from .cors import with_cors
from .shortcut import Endpoint, Shortcut, answer, route_path

__all__ = ["TELEMETRY_RECHECK", "Direct", "Service", "direct"]

TELEMETRY_RECHECK = 1.0
"""Seconds between two looks at whether FastAPI's telemetry has been turned on (:meth:`Service.plain`)."""

_PASSING = frozenset(
    {
        ("fastapi.telemetry._asgi", "ExceptionTelemetryMiddleware"),
        ("fastapi._body_limit", "AppBodyLimitMiddleware"),  # with no max_body_size: nothing inside it
    }
)
"""FastAPI's layers that do nothing for a call unless its scope says so (:meth:`Service.plain`), by name:
private to FastAPI, so a version that renames them gets the whole path rather than an import error."""


_MAX_BODY_SIZE_SCOPE_KEY = "starlette.max_body_size"
"""Where an outer app's body limit (Starlette's ``body_limit`` middleware) puts its cap: named here, not
imported, since the Starlettes that FastAPI 0.115 allows have no such module."""


class Direct:
    """The shortcut's calls answered with what the layers in front of it did for them (see the module)."""

    def __init__(self, shortcut: Shortcut, limit: BodySizeLimit | None, handler: Any) -> None:
        self.endpoints = shortcut.endpoints
        self.limit = limit
        self.handler = handler

    async def __call__(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await self._response(endpoint, scope, receive, send)
        except Exception as exc:
            await self._failed(exc, scope, receive, send, started=False)
            raise
        try:
            await response(scope, receive, send)
        except Exception as exc:
            await self._failed(exc, scope, receive, send, started=True)
            raise

    async def _response(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> Response:
        limit = self.limit
        if limit is None:
            return await answer(endpoint, Request(scope, receive, send))
        return await limit.within(
            scope, receive, lambda counted: answer(endpoint, Request(scope, counted, send))
        )

    async def _failed(
        self, exc: Exception, scope: Scope, receive: Receive, send: Send, *, started: bool
    ) -> None:
        """What Starlette's server-error middleware does: the app's handler answers (and logs) ``exc``,
        and its answer is sent unless one has started."""
        request = Request(scope)
        handler = self.handler
        if iscoroutinefunction(handler) or iscoroutinefunction(type(handler).__call__):
            response = await handler(request, exc)
        else:
            response = await run_in_threadpool(handler, request, exc)
        if not started:
            await response(scope, receive, send)


def direct(stack: ASGIApp) -> Direct | None:
    """The :class:`Direct` answer ``stack`` (an app's built middleware stack) allows: when the layers from
    its top down to a :class:`Shortcut` are Starlette's server-error middleware (with a handler, not in
    debug), the passing ones and at most one body size cap; else ``None``, the whole path."""
    handler, limit = None, None
    layer: Any = stack
    while True:
        kind = type(layer)
        if kind is ServerErrorMiddleware and handler is None and not layer.debug:
            handler = layer.handler
        elif (kind.__module__, kind.__name__) in _PASSING:
            pass
        elif kind is BodySizeLimit and limit is None:
            limit = layer
        elif kind is Shortcut and handler is not None:
            return Direct(layer, limit, handler)
        else:
            return None
        layer = layer.app


class Service(FastAPI):
    """``keyturn serve``'s app: a FastAPI app that answers its shortcut's calls in front of its layers."""

    _direct: Direct | None = None
    _quiet_until = 0.0
    """Until when FastAPI's telemetry is taken to be off (:meth:`plain`)."""
    _judged: ASGIApp | None = None
    """The stack :attr:`_direct` was found in (built on the first call, the lifespan's or a request's)."""
    _cors: ASGIApp | None = None
    """CORS in front of everything (:meth:`allow_origins`), or ``None``: no CORS header at all."""

    def allow_origins(self, origins: Sequence[str]) -> None:
        """Answer CORS for ``origins`` (``settings.cors_origins``: see ``cors.py``), outermost."""
        self._cors = with_cors(self._serve, origins) if origins else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cors = self._cors
        if cors is not None and scope["type"] == "http":
            await cors(scope, receive, send)
        else:
            await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            stack = self.middleware_stack
            if stack is None:
                stack = self.middleware_stack = self.build_middleware_stack()
            if stack is not self._judged:
                self._direct, self._judged = direct(stack), stack
            shortcut = self._direct
            if shortcut is not None:
                if self.root_path:
                    scope["root_path"] = self.root_path
                endpoint = shortcut.endpoints.get((scope["method"], route_path(scope)))
                if endpoint is not None and self.plain(scope):
                    scope["app"] = self
                    await shortcut(endpoint, scope, receive, send)
                    return
        await super().__call__(scope, receive, send)

    def plain(self, scope: Scope) -> bool:
        """Whether the call needs none of the passing layers: no outer app's body limit, FastAPI's
        telemetry off. FastAPI asks the latter at every call (microseconds: three OpenTelemetry providers
        looked up); here it is asked at most once in :data:`TELEMETRY_RECHECK` seconds while it stays off,
        so telemetry set up while the app serves reaches the refresh within that."""
        if "fastapi.telemetry" in scope or _MAX_BODY_SIZE_SCOPE_KEY in scope:
            return False
        now = time.monotonic()
        if now < self._quiet_until:
            return True
        telemetry = getattr(self, "_native_telemetry", None)
        if telemetry is None or telemetry.enabled():
            return False
        self._quiet_until = now + TELEMETRY_RECHECK
        return True
