"""A pure ASGI middleware that refuses request bodies over a size cap before they are read whole."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InvalidRequest
from ..oauth import OAUTH_PREFIX
from .errors import KEYTURN, OAUTH
from .shortcut import route_path

T = TypeVar("T")


class BodySizeLimit:
    """Answers 413 ``invalid_request`` (the one error body, in RFC 6749's form under ``/oauth``) for
    bodies over ``max_bytes``.

    A declared ``Content-Length`` is judged before the app runs, at no cost per request; a body without
    one (chunked) is counted as it arrives, and a route whose body FastAPI parses reports the overflow as
    400 ``invalid_request`` instead.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = await self.within(scope, receive, lambda counted: self.app(scope, counted, send))
        if refused is not None:
            await refused(scope, receive, send)

    async def within(
        self, scope: Scope, receive: Receive, run: Callable[[Receive], Awaitable[T]]
    ) -> T | Response:
        """``run``'s result, given ``receive`` (counting the body unless its length is declared), or the
        413 refusal, not yet sent, when the declared length or the body read is over the cap.

        The one home of the cap's steps: this middleware runs its app so, and so does
        :class:`~keyturn.server.front.Direct`, which answers the refresh in front of it.
        """
        declared = self.declared(scope)
        if declared is False:
            return self.refusal(scope)
        try:
            return await run(receive if declared else self.counting(receive))
        except TooLarge:
            # Raised while the app reads its body, so before it has started a response.
            return self.refusal(scope)

    def declared(self, scope: Scope) -> bool | None:
        """Whether the declared ``Content-Length`` is within the cap (an unreadable one is not); ``None``
        without one, when :meth:`counting` must count the body as it arrives."""
        for name, value in scope["headers"]:
            if name == b"content-length":
                return value.isdigit() and int(value) <= self.max_bytes
        return None

    def counting(self, receive: Receive) -> Receive:
        """``receive``, raising :class:`TooLarge` once the body it has given is over the cap."""
        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise TooLarge
            return message

        return counted_receive

    def refusal(self, scope: Scope) -> Response:
        """The 413 answer to a body over the cap."""
        error = InvalidRequest(f"The request body is over {self.max_bytes} bytes.")
        path = route_path(scope)
        oauth = path == OAUTH_PREFIX or path.startswith(OAUTH_PREFIX + "/")
        return (OAUTH if oauth else KEYTURN).render(error, status=413)


class TooLarge(Exception):
    """A body over the cap, raised from :meth:`BodySizeLimit.counting`'s ``receive``."""
