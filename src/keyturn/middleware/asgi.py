"""A pure ASGI middleware: every HTTP request (and WebSocket handshake) must carry a valid access token.

The verified :class:`~keyturn.tokens.AccessClaims` are put in ``scope["keyturn.token"]`` and in
``scope["state"]["keyturn"]`` (Starlette and FastAPI: ``request.state.keyturn``). Failures answer with the
Keyturn's error body (docs/contract.md) and ``WWW-Authenticate``; the app is not called.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..errors import KeyturnError
from ..http import error_response
from ._bearer import BearerGuard, BearerRequest, is_dpop

__all__ = ["KeyturnMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WS_POLICY_VIOLATION = 1008


class KeyturnMiddleware(BearerGuard[ASGIApp]):
    """Wrap ``app`` so that only requests with a valid access token reach it.

    ``exempt`` lists paths that pass without a token, each with everything below it (``/health``
    covers ``/health/db`` but not ``/healthz``): health checks, public pages. With
    ``required=False`` a request without ``Authorization`` passes too (``scope["keyturn.token"]`` is
    None), while a bad token is still refused.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            if scope["type"] == "lifespan":
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        request = _request(scope)
        try:
            claims = await self.check.averify(request)
        except KeyturnError as error:
            await self._refuse(scope, send, error, request.authorization)
            return
        scope["keyturn.token"] = claims
        scope["keyturn.verifier"] = self.verifier
        scope.setdefault("state", {})["keyturn"] = claims
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, error: KeyturnError, authorization: str | None) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION, "reason": error.code})
            return
        status, headers, body = error_response(error, self.realm, self.errors.presented(authorization))
        raw = [(k.lower().encode(), v.encode()) for k, v in headers]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the app's lifespan through, and close the verifier's thread when the app shuts down."""

        async def send_and_close(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.verifier.aclose()
            await send(message)

        await self.app(scope, receive, send_and_close)


def _request(scope: Scope) -> BearerRequest:
    """The request's ``Authorization`` and path, and with a DPoP token its method, URL (without query)
    and ``DPoP`` headers."""
    found = [value.decode("latin-1") for name, value in scope.get("headers", ()) if name == b"authorization"]
    authorization, repeated = (found[0] if found else None), len(found) > 1
    path = scope.get("path", "")
    if not is_dpop(authorization):
        return BearerRequest(authorization, path, repeated=repeated)
    proofs = tuple(value.decode("latin-1") for name, value in scope.get("headers", ()) if name == b"dpop")
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
    host = next((value.decode("latin-1") for name, value in scope.get("headers", ()) if name == b"host"), "")
    if not host and scope.get("server"):
        host = "{}:{}".format(*scope["server"])
    url = f"{scheme}://{host}{path}"  # the full path (root_path included), no query
    return BearerRequest(authorization, path, scope.get("method", ""), url, proofs, repeated)
