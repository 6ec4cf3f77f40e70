"""A pure ASGI middleware that bounds the logins in flight, before any of their work is done.

A login costs a rate-limit step in the store and an argon2 hash; a burst of them, each inside its own
address's limits, queues at the store and the hasher, and a real user's login waits behind them all. Past
``max_in_flight`` logins being answered, one more is refused at once with 503 ``server_error`` and
``Retry-After`` (``Overloaded``), before its body is read: the service stays responsive and a client knows
when to come back. ``UserDirectory`` bounds its hashing queue too, for applications that embed it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import Overloaded
from ..events import emit
from ..users import LOGIN_RETRY_AFTER
from .errors import render


class LoginGate:
    def __init__(self, app: ASGIApp, path: str, max_in_flight: int) -> None:
        self.app = app
        self.path = path
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            emit("login.overloaded", waiting=self.in_flight)
            error = Overloaded(LOGIN_RETRY_AFTER, "Too many logins at once; retry shortly.")
            await render(error)(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
