"""A pure ASGI middleware that refuses request bodies over a size cap before they are read whole."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InvalidRequest
from ..oauth import OAUTH_PREFIX
from .errors import KEYTURN, OAUTH
from .shortcut import route_path


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
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) <= self.max_bytes:
                    await self.app(scope, receive, send)
                else:
                    await self._refuse(scope, receive, send)
                return
        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted_receive, send)
        except _TooLarge:
            # Raised while the app reads its body, so before it has started a response.
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = InvalidRequest(f"The request body is over {self.max_bytes} bytes.")
        path = route_path(scope)
        oauth = path == OAUTH_PREFIX or path.startswith(OAUTH_PREFIX + "/")
        await (OAUTH if oauth else KEYTURN).render(error, status=413)(scope, receive, send)


class _TooLarge(Exception):
    pass
