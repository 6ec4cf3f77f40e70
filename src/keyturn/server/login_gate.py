"""A pure ASGI middleware that takes a login's place in the login queue before any of its work is done.

``UserDirectory`` bounds the logins being answered (hashing, or waiting to, for as long as a real user
can wait); past the bound a login gets 503 ``server_error`` with ``Retry-After`` (``Overloaded``). Taken in
the route, a place would come after the rate-limit step in the store: a burst of logins would queue there
first, and each refused one would use up its address's allowance. Here the place is taken as the request
arrives, before its body is read, and held until it is answered. Its 503 carries the CORS headers that
the app behind it would add (``CORS_ORIGINS``), so a page on another origin can read it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import Overloaded
from .cors import with_cors
from .errors import render
from .runtime import Runtime


class LoginGate:
    """Wraps the token service's app (``create_app``); ``path`` is its login route."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        runtime: Runtime | None = getattr(getattr(self.app, "state", None), "runtime", None)
        if runtime is None:  # not started yet: the route will say so
            await self.app(scope, receive, send)
            return
        try:
            admission = runtime.users.admit_login()
        except Overloaded as error:
            await with_cors(render(error), runtime.settings.cors_origins)(scope, receive, send)
            return
        with admission:
            await self.app(scope, receive, send)
