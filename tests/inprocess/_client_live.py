"""A real Keyturn token service for the client's tests, and the faults the tests inject around it.

:class:`LiveService` serves the real app (``create_app`` on a memory store, the built-in user store, a
fast password hasher) with a real uvicorn server on 127.0.0.1, in a thread of this process. Its clock is a
:class:`~keyturn.clock.FrozenClock` the tests move, so tokens expire without waiting. Besides the token
service's own routes it serves ``GET``/``POST /resource``: a resource that authenticates the caller's
access token with the service itself, as a resource server does.

Between uvicorn and the app sits :class:`Control`, which counts requests by method and path, remembers
which bearer token each carried, can hold a path's requests for a while, and can answer a path with a
canned response on command (a 503, a 429 with ``Retry-After``, a garbled body): faults on the server's
side of the wire. On the client's side, :class:`FaultyTransport` and :class:`AsyncFaultyTransport` wrap
httpx's real transports and fail on command (connection refused, timeout, the lost answer).

What the helpers keep of tokens (bearer tokens seen, request bodies, lost answers) stays out of their
reprs: tests compare tokens, never print them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from keyturn.client import TokenManager, Tokens
from keyturn.clock import FrozenClock
from keyturn.http import bearer_token
from keyturn.server.app import create_app
from keyturn.server.runtime import Runtime
from keyturn.testing import make_settings

from .._threaded import ThreadedService

T = TypeVar("T")

TLS = ssl.create_default_context()
"""One TLS context for every client the tests make (loading the CA bundle per client costs ~50 ms); the
tests speak plain HTTP on loopback, so it is never used for a handshake."""

SERVER_EPOCH = 1_800_000_000.0
"""Where the service's clock starts (a whole second, so token times are exact)."""

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Canned:
    """An answer the server gives instead of handling the request."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def error(cls, status: int, code: str, **headers: str) -> Canned:
        """Keyturn's error body (DESIGN section 3), with a ``WWW-Authenticate`` challenge on a 401."""
        body = json.dumps({"error": code, "error_description": "injected", "retryable": status != 401})
        extra = tuple((name.replace("_", "-"), value) for name, value in headers.items())
        if status == 401:
            challenge = f'Bearer realm="keyturn", error="invalid_token", error_description="{code}: injected"'
            extra += (("WWW-Authenticate", challenge),)
        return cls(status, body.encode(), (("Content-Type", "application/json"), *extra))


class Control:
    """ASGI wrapper: counts, remembers bearer tokens, delays and answers on command."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._lock = threading.Lock()
        self.hits: Counter[tuple[str, str]] = Counter()
        self.bearers: list[tuple[str, str, str | None]] = []
        """``(method, path, bearer token or None)`` of every request, in order."""
        self._canned: dict[tuple[str, str], deque[Canned]] = {}
        self._delays: dict[tuple[str, str], float] = {}

    def reset(self) -> None:
        with self._lock:
            self.hits.clear()
            self.bearers.clear()
            self._canned.clear()
            self._delays.clear()

    def answer(self, method: str, path: str, *answers: Canned) -> None:
        """The next requests to ``method path`` get ``answers``, one each, in order."""
        with self._lock:
            self._canned.setdefault((method, path), deque()).extend(answers)

    def delay(self, method: str, path: str, seconds: float) -> None:
        """Hold every request to ``method path`` this long before handling it."""
        with self._lock:
            self._delays[(method, path)] = seconds

    def count(self, method: str, path: str) -> int:
        with self._lock:
            return self.hits[(method, path)]

    def tokens_sent(self, method: str, path: str) -> list[str | None]:
        with self._lock:
            return [token for m, p, token in self.bearers if (m, p) == (method, path)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = (scope["method"], scope["path"])
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]
        }
        try:
            token = bearer_token(headers.get("authorization"))
        except Exception:  # noqa: BLE001 - an odd header is simply "no token" here
            token = None
        with self._lock:
            self.hits[key] += 1
            self.bearers.append((key[0], key[1], token))
            queue = self._canned.get(key)
            canned = queue.popleft() if queue else None
            delay = self._delays.get(key, 0.0)
        if delay:
            await asyncio.sleep(delay)
        if canned is None:
            await self.app(scope, receive, send)
            return
        await _drain(receive)
        raw = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in canned.headers]
        raw.append((b"content-length", str(len(canned.body)).encode()))
        await send({"type": "http.response.start", "status": canned.status, "headers": raw})
        await send({"type": "http.response.body", "body": canned.body})


async def _drain(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


def _add_resource(app: FastAPI) -> None:
    @app.api_route("/resource", methods=["GET", "POST"])
    async def resource(request: Request) -> JSONResponse:
        rt: Runtime = request.app.state.runtime
        token = bearer_token(request.headers.get("authorization")) or ""
        auth = await rt.sessions.authenticate(token)  # Keyturn's own 401 bodies on failure
        return JSONResponse({"subject": auth.claims.sub, "method": request.method})


class LiveService(ThreadedService):
    """The token service, served by uvicorn on 127.0.0.1 in a background thread, behind :class:`Control`."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(make_settings(**settings), FrozenClock(SERVER_EPOCH))
        self.clock: FrozenClock
        self.control: Control | None = None

    def app(self, runtime: Runtime) -> ASGIApp:
        app = create_app(runtime=runtime)
        _add_resource(app)
        self.control = Control(app)
        return self.control

    # -- what tests use -------------------------------------------------------------------------

    @property
    def ctl(self) -> Control:
        assert self.control is not None
        return self.control

    def call(self, make: Callable[[Runtime], Coroutine[Any, Any, T]]) -> T:
        """Run ``make(runtime)`` on the service's own event loop (its store belongs there)."""
        assert self.runtime is not None
        return self.on_loop(make(self.runtime))

    def fresh(self) -> None:
        """Start a test: forget counts and commands, move the clock on to a time no test used yet."""
        self.ctl.reset()
        self.clock.advance(100_000)

    def refreshes(self) -> int:
        return self.ctl.count("POST", "/auth/refresh")

    def login_body(self) -> dict[str, Any]:
        """A token response for a new session of alice, obtained with a plain HTTP call."""
        with httpx.Client(base_url=self.url, timeout=30, verify=TLS) as http:
            response = http.post("/auth/login", json={"username": self.username, "password": self.password})
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    def raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A plain HTTP call to the service, outside any client under test."""
        with httpx.Client(base_url=self.url, timeout=30, verify=TLS) as http:
            return http.request(method, path, **kwargs)


@contextlib.contextmanager
def live_service(**settings: Any) -> Iterator[LiveService]:
    service = LiveService(**settings).start()
    try:
        yield service
    finally:
        service.stop()


# -- client-side faults -------------------------------------------------------------------------

Fault = Literal["connect", "timeout", "lost"]


@dataclass
class Sent:
    """One request that reached the client's transport."""

    method: str
    path: str
    body: bytes = field(repr=False)  # may hold a refresh token
    fault: Fault | None
    at: float
    """``time.monotonic()`` when it was sent."""


@dataclass
class Faults:
    """Faults for the client's transport, by path, one per request, in order."""

    planned: dict[str, deque[Fault]] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    lost_answers: list[bytes] = field(default_factory=list, repr=False)
    """The bodies of answers the server gave but the client never saw."""
    before_send: Callable[[httpx.Request], None] | None = None
    """Run just before each request is sent (while it is "in flight"), e.g. to move a clock."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def plan(self, path: str, *faults: Fault) -> None:
        with self._lock:
            self.planned.setdefault(path, deque()).extend(faults)

    def take(self, request: httpx.Request) -> Fault | None:
        with self._lock:
            queue = self.planned.get(request.url.path)
            fault = queue.popleft() if queue else None
            self.sent.append(Sent(request.method, request.url.path, request.content, fault, time.monotonic()))
        if self.before_send is not None:
            self.before_send(request)
        return fault

    def count(self, path: str) -> int:
        with self._lock:
            return sum(1 for s in self.sent if s.path == path)

    def bodies(self, path: str) -> list[bytes]:
        with self._lock:
            return [s.body for s in self.sent if s.path == path]

    def times(self, path: str) -> list[float]:
        with self._lock:
            return [s.at for s in self.sent if s.path == path]


def _raise(fault: Fault, request: httpx.Request) -> None:
    if fault == "connect":
        raise httpx.ConnectError("injected: connection refused", request=request)
    if fault == "timeout":
        raise httpx.ReadTimeout("injected: timed out", request=request)


class FaultyTransport(httpx.BaseTransport):
    """httpx's real transport, failing on command."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._real = httpx.HTTPTransport(verify=TLS)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        fault = self.faults.take(request)
        if fault in ("connect", "timeout"):
            _raise(fault, request)
        response = self._real.handle_request(request)
        if fault == "lost":
            body = response.read()
            response.close()
            self.faults.lost_answers.append(body)
            raise httpx.ReadError("injected: connection dropped before the answer", request=request)
        return response

    def close(self) -> None:
        self._real.close()


class AsyncFaultyTransport(httpx.AsyncBaseTransport):
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._real = httpx.AsyncHTTPTransport(verify=TLS)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        fault = self.faults.take(request)
        if fault in ("connect", "timeout"):
            _raise(fault, request)
        response = await self._real.handle_async_request(request)
        if fault == "lost":
            body = await response.aread()
            await response.aclose()
            self.faults.lost_answers.append(body)
            raise httpx.ReadError("injected: connection dropped before the answer", request=request)
        return response

    async def aclose(self) -> None:
        await self._real.aclose()


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; what it last said."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class MaxRandom(random.Random):
    """``uniform`` always gives the top of the range: jitter at its most, the longest backoff."""

    def uniform(self, a: float, b: float) -> float:
        return b


class MinRandom(random.Random):
    """``uniform`` always gives the bottom of the range: no jitter, no backoff wait."""

    def uniform(self, a: float, b: float) -> float:
        return a


@dataclass
class Harness:
    """One test's view of the live service: the client's own clock, its faults, what its callbacks heard."""

    live: LiveService
    clock: FrozenClock
    """The client's clock (the service's has its own)."""
    faults: Faults = field(default_factory=Faults)
    ended: list[str] = field(default_factory=list)
    """Every ``on_session_ended`` reason, in order."""
    states: list[str] = field(default_factory=list)
    """Every ``on_state`` change, in order."""
    _sync: list[httpx.Client] = field(default_factory=list)
    _async: list[httpx.AsyncClient] = field(default_factory=list)

    @classmethod
    def on(cls, live: LiveService, skew: float = 0.0) -> Harness:
        """A fresh start on ``live``, the client's clock ``skew`` seconds ahead of the service's."""
        live.fresh()
        return cls(live, FrozenClock(live.clock.now() + skew))

    def advance(self, seconds: float) -> None:
        """Time passes, for the service and the client alike."""
        self.live.clock.advance(seconds)
        self.clock.advance(seconds)

    def http(self) -> httpx.Client:
        client = httpx.Client(base_url=self.live.url, transport=FaultyTransport(self.faults), timeout=10)
        self._sync.append(client)
        return client

    def async_http(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            base_url=self.live.url, transport=AsyncFaultyTransport(self.faults), timeout=10
        )
        self._async.append(client)
        return client

    def manager(self, *, asynchronous: bool = False, **kwargs: Any) -> TokenManager:
        """A manager on the live service through the faulty transports, reporting to this harness."""
        kwargs.setdefault("clock", self.clock)
        kwargs.setdefault("rng", random.Random(7))
        kwargs.setdefault("on_session_ended", self.ended.append)
        kwargs.setdefault("on_state", self.states.append)
        kwargs.setdefault("http", self.http())
        if asynchronous:
            kwargs.setdefault("async_http", self.async_http())
        return TokenManager(self.live.url, **kwargs)

    def login(self, manager: TokenManager) -> Tokens:
        return manager.login(self.live.username, self.live.password)

    def close(self) -> None:
        for client in self._sync:
            client.close()

    async def aclose(self) -> None:
        for client in self._async:
            await client.aclose()
        self.close()
