"""A pure ASGI middleware that hands the hot path's calls straight to their endpoint.

Every client calls ``POST /auth/refresh`` once per access-token lifetime, so it is the service's hot path.
Through FastAPI a call passes the exception middleware, the dependencies' exit stacks, two levels of
routing and the route's own wrappers before the endpoint runs: on a 2-core machine that was about a
sixth of the whole call, uvicorn included. This middleware calls the endpoint at once instead. The
endpoint is the same function the route declares, so the OpenAPI schema, the body parsing, the answers
and the metrics are the route's own; only the way there is shorter.

It sits inside :class:`~keyturn.server.body_limit.BodySizeLimit` (bodies over the cap are refused as for any
route) and inside Starlette's server-error middleware (an unexpected exception still becomes the one
500 body); a ``KeyturnError`` is rendered here as the exception handlers would render it, and a client
gone while its body was read is answered as they would, quietly (no server error). In an app that
embeds Keyturn it is inside the app's own middleware too, which sees the refresh as any other call. In
``keyturn serve``, whose whole stack is Keyturn's, the app answers this middleware's calls before every
layer (``front.py``), with the same endpoints, cap and error handling.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from fastapi import Request, Response
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import KeyturnError
from .errors import client_gone, respond

Endpoint = Callable[[Request], Awaitable[Response]]


class Shortcut:
    """Answers the calls of ``endpoints`` (``(method, path)`` to an endpoint taking the ``Request`` and
    returning the ``Response``) itself; every other call goes on to ``app``."""

    def __init__(self, app: ASGIApp, endpoints: Mapping[tuple[str, str], Endpoint]) -> None:
        self.app = app
        self.endpoints = dict(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = (
            self.endpoints.get((scope["method"], route_path(scope))) if scope["type"] == "http" else None
        )
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        response = await answer(endpoint, Request(scope, receive, send))
        await response(scope, receive, send)


async def answer(endpoint: Endpoint, request: Request) -> Response:
    """The endpoint's answer to ``request``, or its error's as the route's handlers would give it: a
    ``KeyturnError``'s, and a client gone while its body was read (``errors.client_gone``)."""
    try:
        return await endpoint(request)
    except KeyturnError as exc:
        return respond(exc)
    except ClientDisconnect:
        return client_gone()


def route_path(scope: Scope) -> str:
    """The path the router would match: without the ``root_path`` a proxy mounted the app under."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        return path[len(root) :]
    return path
