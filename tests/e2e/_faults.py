"""An HTTP/1.1 reverse proxy on loopback that injects faults per request, for client tests.

A client talks to the proxy (with keep-alive) as it would to the server. The proxy reads each request
(the head up to the blank line, the body by ``Content-Length``; a chunked request is refused with 411),
then, per the fault policy, either forwards it to the upstream on a new connection with
``Connection: close`` and relays the answer, or does one of:

- ``drop_before``: close the client's connection; the request never reaches the server;
- ``drop_after``: forward the request, let the server answer it, then close the client's connection without
  relaying the answer (the lost response: the server changed state, the client saw a network error);
- ``delay``: forward the request, then wait ``delay_seconds`` before relaying the answer (the server has
  already done the work; a client with a shorter timeout gives up);
- ``status_503`` / ``status_429``: answer at once in Keyturn's error shape (``server_error`` /
  ``rate_limited`` with ``Retry-After: 1``) without forwarding.

Faults come from two places, checked in this order: one-shot injections (:meth:`HttpFaultProxy.inject`:
"the next N matching requests get this fault") and the probabilistic policy (:class:`Faults`), drawn from a
seeded ``random.Random``. Besides, :meth:`~HttpFaultProxy.down` closes every connection and every new
request until :meth:`~HttpFaultProxy.up` (a restart window), :meth:`~HttpFaultProxy.hold` keeps requests
waiting at the proxy until :meth:`~HttpFaultProxy.release`, and :meth:`~HttpFaultProxy.set_upstream` points
the proxy at a restarted server. :meth:`~HttpFaultProxy.counts` and :meth:`~HttpFaultProxy.history` tell
what happened (paths only: no header, body or query string is kept).

The proxy runs an asyncio loop in its own thread; its public methods are for the test's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
from collections import Counter
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

Fault = Literal["drop_before", "drop_after", "delay", "status_503", "status_429"]
FAULTS: tuple[Fault, ...] = ("drop_before", "drop_after", "delay", "status_503", "status_429")

MAX_HEAD = 64 * 1024
UPSTREAM_TIMEOUT = 60.0
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}
T = TypeVar("T")


@dataclass
class Faults:
    """A probabilistic fault policy: each request on ``paths`` draws once and gets at most one fault.

    The probabilities are tried in the order of the fields and must add up to at most 1. ``paths`` are
    path prefixes (``("/auth/refresh",)``); empty means every request.
    """

    drop_before: float = 0.0
    drop_after: float = 0.0
    delay: float = 0.0
    status_503: float = 0.0
    status_429: float = 0.0
    delay_seconds: float = 1.0
    paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if any(getattr(self, name) < 0 for name in FAULTS) or sum(getattr(self, n) for n in FAULTS) > 1:
            raise ValueError("fault probabilities must be >= 0 and add up to at most 1")


@dataclass
class _Injection:
    fault: Fault
    remaining: int
    paths: tuple[str, ...]
    delay_seconds: float


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def wants_close(self) -> bool:
        value = ",".join(v for k, v in self.headers if k.lower() == "connection").lower()
        return "close" in value or (self.version == "HTTP/1.0" and "keep-alive" not in value)


@dataclass
class _Response:
    head: bytes
    body: bytes
    framed: bool
    """False when the body ran until the upstream closed: then the client's connection must close too."""


def matches(path: str, prefixes: tuple[str, ...]) -> bool:
    return not prefixes or path.startswith(prefixes)


def error_response(fault: Fault, close: bool = False) -> bytes:
    """The answer of an injected ``status_503`` or ``status_429``, in Keyturn's error shape."""
    if fault == "status_429":
        status, extra = "429 Too Many Requests", "Retry-After: 1\r\n"
        body = {
            "error": "rate_limited",
            "error_description": "Too many requests (injected).",
            "retryable": True,
        }
    else:
        status, extra = "503 Service Unavailable", ""
        body = {"error": "server_error", "error_description": "Unavailable (injected).", "retryable": True}
    if close:
        extra += "Connection: close\r\n"
    data = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        f"Cache-Control: no-store\r\nPragma: no-cache\r\n{extra}\r\n"
    )
    return head.encode() + data


class HttpFaultProxy:
    """The proxy: ``url`` is what clients call; start it with :func:`http_fault_proxy`."""

    def __init__(self, upstream: str, faults: Faults | None = None, seed: int = 0) -> None:
        self.faults = faults or Faults()
        """The probabilistic policy; assign a new :class:`Faults` at any time."""
        self._history: list[tuple[str, str, str]] = []
        self._upstream = self._split(upstream)
        self._random = random.Random(seed)
        self._counts: Counter[str] = Counter()
        self._injections: list[_Injection] = []
        self._lock = threading.Lock()
        self._down = False
        self._loop = asyncio.new_event_loop()
        self._released = asyncio.Event()
        self._released.set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="http-fault-proxy", daemon=True)
        self.url = ""

    # -- control, from the test's thread ---------------------------------------------------------------

    def start(self) -> HttpFaultProxy:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._serve, "127.0.0.1", 0, limit=MAX_HEAD))
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    def stop(self) -> None:
        """Close the listener and every connection, end the loop's thread."""
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._call(self._shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    def set_upstream(self, url: str) -> None:
        """Forward from now on to ``url`` (``http://host:port``), e.g. a server restarted on another port."""
        self._upstream = self._split(url)

    def inject(
        self, fault: Fault, times: int = 1, paths: tuple[str, ...] = (), delay_seconds: float = 1.0
    ) -> None:
        """Give ``fault`` to the next ``times`` requests on ``paths`` (path prefixes; empty: any path)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        with self._lock:
            self._injections.append(_Injection(fault, times, paths, delay_seconds))

    def clear(self) -> None:
        """Forget pending injections and the policy (counters and log stay)."""
        with self._lock:
            self._injections.clear()
        self.faults = Faults()

    def down(self) -> None:
        """Close every client connection now and every new request until :meth:`up`: a restart window."""
        self._down = True
        self._call(self._cut_all())

    def up(self) -> None:
        self._down = False

    def hold(self) -> None:
        """Keep requests waiting at the proxy (not forwarded) until :meth:`release`: lines up concurrent
        calls, or plays a server that hangs."""
        self._call(self._set_released(False))

    def release(self) -> None:
        self._call(self._set_released(True))

    def counts(self) -> Counter[str]:
        """A copy of the counters: ``connections``, ``requests``, ``held`` and one per outcome (see
        :meth:`history`)."""
        with self._lock:
            return Counter(self._counts)

    def history(self) -> list[tuple[str, str, str]]:
        """``(method, path, outcome)`` per request so far; the outcome is ``forwarded``, a fault,
        ``refused`` (down) or ``upstream_error`` (the upstream could not be reached: the client's
        connection was closed)."""
        with self._lock:
            return list(self._history)

    # -- the loop's side -------------------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    @staticmethod
    def _split(url: str) -> tuple[str, int]:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError("upstream must be an http:// URL")
        return parts.hostname, parts.port or 80

    def _count(self, request: _Request | None, outcome: str) -> None:
        with self._lock:
            self._counts[outcome] += 1
            if request is not None:
                self._history.append((request.method, request.path, outcome))

    def _decide(self, path: str) -> tuple[Fault | None, float]:
        with self._lock:
            for injection in self._injections:
                if matches(path, injection.paths):
                    injection.remaining -= 1
                    if injection.remaining <= 0:
                        self._injections.remove(injection)
                    return injection.fault, injection.delay_seconds
        policy = self.faults
        if not matches(path, policy.paths):
            return None, 0.0
        draw, edge = self._random.random(), 0.0
        for fault in FAULTS:
            edge += getattr(policy, fault)
            if draw < edge:
                return fault, policy.delay_seconds
        return None, 0.0

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut_all()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        await asyncio.sleep(0.05)  # let the closed transports run their last callbacks
        await self._loop.shutdown_default_executor()

    async def _set_released(self, released: bool) -> None:
        if released:
            self._released.set()
        else:
            self._released.clear()

    async def _cut_all(self) -> None:
        # Cancelled again until each has ended: on Python 3.11, a cancel that lands as the ``wait_for``
        # around an upstream call completes is lost (gh-86296), and the connection's task then waits for
        # the client's next request (a soak run's down() timed out so, after 30 s).
        pending = set(self._tasks)
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._count(None, "connections")
        try:
            while True:
                request = await self._read_request(reader, writer)
                if request is None:
                    return
                if not await self._handle(request, writer):
                    return
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            return
        except asyncio.CancelledError:  # down() or stop(): end quietly (asyncio logs a cancelled handler)
            return
        finally:
            self._tasks.discard(task)
            writer.close()  # after what was written is sent

    async def _handle(self, request: _Request, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the client's connection must be closed."""
        self._count(None, "requests")
        if not self._released.is_set():
            self._count(None, "held")
            await self._released.wait()
        if self._down:
            self._count(request, "refused")
            return False
        fault, delay = self._decide(request.path)
        if fault == "drop_before":
            self._count(request, fault)
            return False
        if fault in ("status_503", "status_429"):
            self._count(request, fault)
            writer.write(error_response(fault, close=request.wants_close()))
            await writer.drain()
            return not request.wants_close()
        try:
            response = await asyncio.wait_for(self._forward(request), UPSTREAM_TIMEOUT)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            self._count(request, "upstream_error")
            return False
        if fault == "drop_after":
            self._count(request, fault)
            return False
        if fault == "delay":
            self._count(request, fault)
            await asyncio.sleep(delay)
        else:
            self._count(request, "forwarded")
        keep = response.framed and not request.wants_close()
        writer.write(
            response.head.rstrip(b"\r\n") + (b"\r\n\r\n" if keep else b"\r\nConnection: close\r\n\r\n")
        )
        writer.write(response.body)
        await writer.drain()
        return keep

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> _Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None  # the client closed its idle connection
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = [(k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in lines[1:] if line)]
        names = {k.lower(): v for k, v in headers}
        if "transfer-encoding" in names:
            writer.write(b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            writer.write_eof()
            with contextlib.suppress(TimeoutError):  # read the body away: closing on unread data resets
                await asyncio.wait_for(reader.read(), 5)
            return None
        body = await reader.readexactly(int(names.get("content-length", "0")))
        return _Request(method, target, version, headers, body)

    async def _forward(self, request: _Request) -> _Response:
        host, port = self._upstream
        reader, writer = await asyncio.open_connection(host, port, limit=MAX_HEAD)
        try:
            kept = [(k, v) for k, v in request.headers if k.lower() not in HOP_BY_HOP]
            head = f"{request.method} {request.target} HTTP/1.1\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in kept) + "Connection: close\r\n\r\n"
            writer.write(head.encode("latin-1") + request.body)
            await writer.drain()
            raw = await reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = [(k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in lines[1:] if line)]
            names = {k.lower(): v for k, v in headers}
            if request.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                body, framed = b"", True
            elif "content-length" in names and "transfer-encoding" not in names:
                body, framed = await reader.readexactly(int(names["content-length"])), True
            else:  # chunked (relayed as is, the client decodes it) or delimited by the close
                body, framed = await reader.read(), "chunked" in names.get("transfer-encoding", "").lower()
            kept = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
            out = lines[0] + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in kept) + "\r\n"
            return _Response(out.encode("latin-1"), body, framed)
        finally:
            writer.transport.abort()


@contextlib.contextmanager
def http_fault_proxy(upstream: str, faults: Faults | None = None, seed: int = 0) -> Iterator[HttpFaultProxy]:
    """A started :class:`HttpFaultProxy` in front of ``upstream``, stopped on exit."""
    proxy = HttpFaultProxy(upstream, faults, seed)
    try:
        yield proxy.start()
    finally:
        proxy.stop()
