"""``KeyturnAuth``: an ``httpx.Auth`` that sends a fresh access token with every request (sync and async).

::

    manager = TokenManager("https://auth.example.com", store=FileTokenStore("~/.myapp/tokens.json"))
    manager.login(username, password)           # once; the pair is kept in the store
    auth = KeyturnAuth(manager)
    with httpx.Client(auth=auth, transport=KeyturnTransport()) as http:
        http.get("https://api.example.com/orders")
        http.post("https://api.example.com/orders", json=order, auth=auth.safe_to_retry())

What a reply means is decided by ``_flow.request`` (see docs/client.md): a resource server's
``use_dpop_nonce`` gets one resend with its nonce, a 401 one refresh or resend, and more, each counted
as a retry, only while the service keeps reaching the request after its token expired (a request whose
body httpx cannot send twice, streamed from an iterator or a file, gets none of these: its 401 is
handed back after the refresh or the nonce it called for); idempotent
requests (and those sent with ``auth.safe_to_retry()``) are retried on 429, 502, 503, 504 and, through
:class:`KeyturnTransport`, on a connection that failed or dropped, with backoff and ``Retry-After``,
within ``retries`` and ``deadline``. The two shells below only send and sleep.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

import httpx

from ._auth import BearerFlow
from ._steps import Answer, NoAnswer, Reply, SendRequest

__all__ = ["AsyncKeyturnTransport", "KeyturnAuth", "KeyturnTransport"]

FLOW = "keyturn.flow"
"""Request extension: the request is ``KeyturnAuth``'s, so a dropped connection is its flow's to judge."""
NO_ANSWER = "keyturn.no_answer"
"""Response extension: the transport error of a request that got no answer."""


class KeyturnAuth(BearerFlow, httpx.Auth):
    """Bearer tokens from ``manager`` for httpx; ``retries``, ``deadline``, ``retry_unsafe`` and
    :meth:`safe_to_retry` as above."""

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.extensions = {**request.extensions, FLOW: True}
        token, started = self.manager.access_token(), self.manager.clock.now()
        request.headers.update(self.authorization(request.method, str(request.url), token))
        response = yield request
        if self._hand_over(str(request.url), token, response.status_code, response.headers):
            return
        flow, driver = (
            self._request_flow(
                request.method, str(request.url), token, started, replayable=_replayable(request)
            ),
            self.manager._driver,
        )
        while True:
            if response.status_code == 401:
                response.read()
            step = driver.advance(flow, _answer(response))
            if not isinstance(step, SendRequest):
                break
            request.headers.update(self.authorization(request.method, str(request.url), step.token))
            response = yield request
        if isinstance(step, NoAnswer):
            raise step.error

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.extensions = {**request.extensions, FLOW: True}
        token, started = await self.manager.aaccess_token(), self.manager.clock.now()
        request.headers.update(self.authorization(request.method, str(request.url), token))
        response = yield request
        if self._hand_over(str(request.url), token, response.status_code, response.headers):
            return
        flow, driver = (
            self._request_flow(
                request.method, str(request.url), token, started, replayable=_replayable(request)
            ),
            self.manager._driver,
        )
        while True:
            if response.status_code == 401:
                await response.aread()
            step = await driver.aadvance(flow, _answer(response))
            if not isinstance(step, SendRequest):
                break
            request.headers.update(self.authorization(request.method, str(request.url), step.token))
            response = yield request
        if isinstance(step, NoAnswer):
            raise step.error


def _replayable(request: httpx.Request) -> bool:
    """Whether httpx can send ``request`` again as it was: its body is bytes in memory (none, ``content=``
    bytes or str, ``json=``, ``data=`` a form), or a multipart upload (``files=``) whose every file is
    bytes, str or a file that can seek (httpx rewinds each before it sends it). A body streamed from an
    iterator, a file given as ``content=``, or a pipe in a multipart upload, is read as it is sent, once: a
    second sending would find it spent (``StreamConsumed``) or at its end. (The body is not read ahead,
    ``requires_request_body``, to keep an upload streamed.)"""
    stream = request.stream
    if isinstance(stream, httpx.ByteStream):
        return True
    parts = getattr(stream, "fields", None)  # httpx's MultipartStream: its fields, each a file's or not
    if type(stream).__name__ != "MultipartStream" or not isinstance(parts, list):
        return False
    return all(_rewindable(getattr(part, "file", b"")) for part in parts)


def _rewindable(file: object) -> bool:
    if isinstance(file, str | bytes):
        return True
    seekable = getattr(file, "seekable", None)
    try:
        return callable(seekable) and seekable() is True
    except ValueError:  # a closed file
        return False


def _answer(response: httpx.Response) -> Answer:
    error = response.extensions.get(NO_ANSWER)
    if isinstance(error, BaseException):
        return NoAnswer(error)
    return Reply(
        response.status_code, response.headers, response.content if response.status_code == 401 else b""
    )


class KeyturnTransport(httpx.BaseTransport):
    """httpx's transport (``transport``, else ``httpx.HTTPTransport()``), handing a failed or dropped
    connection of a ``KeyturnAuth`` request to its flow as an answer, so that it can be retried.

    Other requests, and ``KeyturnAuth`` without this transport, see httpx's errors as before.
    """

    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        self.transport = transport or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return self.transport.handle_request(request)
        except httpx.TransportError as exc:
            if not request.extensions.get(FLOW):
                raise
            return httpx.Response(0, request=request, extensions={NO_ANSWER: exc})

    def close(self) -> None:
        self.transport.close()


class AsyncKeyturnTransport(httpx.AsyncBaseTransport):
    """:class:`KeyturnTransport` for ``httpx.AsyncClient``."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.transport = transport or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self.transport.handle_async_request(request)
        except httpx.TransportError as exc:
            if not request.extensions.get(FLOW):
                raise
            return httpx.Response(0, request=request, extensions={NO_ANSWER: exc})

    async def aclose(self) -> None:
        await self.transport.aclose()
