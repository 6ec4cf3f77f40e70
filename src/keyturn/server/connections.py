"""Connection limits for ``keyturn serve``: uvicorn's HTTP/1.1 protocol with the guards it lacks.

uvicorn closes a connection idle between requests (``timeout_keep_alive``), and nothing else: a client
may take forever to send a request head (slowloris), open connections and send nothing, send a header of
any size (the parser buffers it) or any number of headers, and hold as many connections as the process
has file descriptors, after which real requests fail and nothing says why. This protocol, a subclass of
uvicorn's httptools one that changes nothing else, adds:

- a time limit on the request head, counted from the connection's opening (or from the first byte of a
  later request on a kept-alive connection) to the end of its headers; past it the connection gets 408
  and is closed;
- a time limit on the request body, counted from the end of its head to its last byte (a client that
  sends a head and then trickles the body): 408 as well, or, once the app has answered, a plain close;
- a request the parser cannot read (a bad request line, header or chunk size, ``Content-Length: abc``)
  gets 400 ``invalid_request``, where uvicorn answers plain text, or nothing once the app has started;
- a cap on the head's size (request line and headers) and on its number of headers: 431, then closed;
  the parser never holds more than the cap and one read from the socket;
- a cap on open connections: one more gets 503 ``server_error`` with ``Retry-After`` at once and is
  closed, and a warning event ``server.connection_limit`` says so (at most once every 10 s).

Every refusal carries the JSON error body. Behind a reverse proxy these limits are the proxy's to enforce
too; they keep a directly exposed ``keyturn serve`` alive.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..errors import InvalidRequest, KeyturnError, ServerError
from ..events import emit
from ..http import error_json

__all__ = ["ConnectionLimits", "fit_file_limit", "guarded_protocol", "uvicorn_options"]

_LOG_EVERY = 10.0
_LINGER = 2.0
"""Seconds a refused connection's input is still read (and dropped) so that the refusal is not lost."""
_SPARE_FILES = 64
"""File descriptors kept beyond the connection cap: the store, the log, the listening socket..."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    head_timeout: float
    """Seconds for a request head to arrive in full."""
    body_timeout: float
    """Seconds for a request body to arrive in full, from the end of its head."""
    max_head_bytes: int
    """Bytes of request line and headers."""
    max_headers: int
    """Header fields in one request."""
    max_connections: int
    """Open connections at once."""


class _Refusals:
    """Counts refused connections and says so in a warning, at most once every ``_LOG_EVERY`` seconds."""

    def __init__(self) -> None:
        self.refused = 0
        self._logged_at = float("-inf")

    def connection_refused(self, open_connections: int, cap: int) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY:
            self._logged_at = now
            emit(
                "server.connection_limit",
                logging.WARNING,
                open_connections=open_connections,
                max_connections=cap,
                refused_since_start=self.refused,
                hint="raise KEYTURN_HTTP_MAX_CONNECTIONS (and the file limit), or put a proxy in front",
            )


class _TooLarge(Exception):
    """Raised in a parser callback: the head has too many headers, or is too large."""


def _response(status: int, reason: str, error: KeyturnError, extra: str = "") -> bytes:
    body = error_json(error)
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncache-control: no-store\r\n"
        f"{extra}content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


_TIMED_OUT = _response(408, "Request Timeout", InvalidRequest("The request head took too long to arrive."))
_BODY_TIMED_OUT = _response(
    408, "Request Timeout", InvalidRequest("The request body took too long to arrive.")
)
_MALFORMED = _response(400, "Bad Request", InvalidRequest("The request is malformed."))
_HEAD_TOO_LARGE = _response(
    431,
    "Request Header Fields Too Large",
    InvalidRequest("The request's headers are too large or too many."),
)
_BUSY = _response(
    503,
    "Service Unavailable",
    ServerError("The server has too many open connections; retry shortly."),
    "retry-after: 1\r\n",
)


def guarded_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with ``limits``; pass it as uvicorn's ``http``."""
    refusals = _Refusals()

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        _body_timer: asyncio.TimerHandle | None = None
        _in_head = True
        _head_bytes = 0
        _header_count = 0
        _head_size = 0
        _too_large = False
        _refusing = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                refusals.connection_refused(len(self.connections), limits.max_connections)
                self._refuse(_BUSY, linger=False)  # a flood of these must not hold descriptors
                return
            self._start_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            self._stop_body_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refusing:
                return
            if self._in_head:
                self._head_bytes += len(data)
            super().data_received(data)
            if self._in_head and self._head_bytes > limits.max_head_bytes:
                self._refuse(_HEAD_TOO_LARGE)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True
            self._header_count = 0
            self._head_size = 0
            if self._head_timer is None:
                self._start_head_timer()

        def on_url(self, url: bytes) -> None:
            self._head_size += len(url)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            # A head that arrived in one read is parsed whole before data_received can judge its size.
            self._header_count += 1
            self._head_size += len(name) + len(value) + 4
            if self._header_count > limits.max_headers or self._head_size > limits.max_head_bytes:
                self._too_large = True
                raise _TooLarge
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._stop_head_timer()
            self._in_head = False
            self._head_bytes = 0
            super().on_headers_complete()
            # cancelled at once by on_message_complete when there is no body
            self._body_timer = self.loop.call_later(limits.body_timeout, self._body_timed_out)

        def on_message_complete(self) -> None:
            self._stop_body_timer()
            super().on_message_complete()
            self._in_head = True  # what comes next on this connection is the next request's head

        def send_400_response(self, msg: str) -> None:
            # uvicorn's answer to a parser error (in the head, or in a body the app may be reading), ours
            # raised in on_header included; uvicorn's own is plain text, or nothing once the app has started
            self._refuse(_HEAD_TOO_LARGE if self._too_large else _MALFORMED)

        def _start_head_timer(self) -> None:
            self._head_timer = self.loop.call_later(limits.head_timeout, self._head_timed_out)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self._in_head:
                self._refuse(_TIMED_OUT)

        def _stop_body_timer(self) -> None:
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None

        def _body_timed_out(self) -> None:
            self._body_timer = None
            if self.cycle is not None and self.cycle.response_started:
                self._refuse(None)  # the app has answered (or is answering): nothing more to say
            else:
                self._refuse(_BODY_TIMED_OUT)

        def _refuse(self, response: bytes | None, *, linger: bool = True) -> None:
            """Answer ``response`` (unless a response is under way, or it is None) and close the connection.

            A refusal of the body of a request the app has not answered yet is that request's answer:
            the app is told the client is gone, so it never writes a second one. Closing a socket with
            unread input resets it, and the client may lose the answer with it: so the write side is
            shut first and what still arrives is read and dropped for a moment (a "lingering close", as
            nginx does), unless ``linger`` is false.
            """
            self._refusing = True
            self._stop_head_timer()
            self._stop_body_timer()
            transport = self.transport
            if transport.is_closing():
                return
            cycle = self.cycle
            if response is None:
                pass
            elif cycle is None or cycle.response_complete:
                transport.write(response)
            elif not self._in_head and not cycle.response_started:
                cycle.disconnected = True  # as when the client goes: the app's sends are dropped
                cycle.message_event.set()
                transport.write(response)
            if linger and transport.can_write_eof():
                transport.write_eof()
                self.loop.call_later(_LINGER, transport.close)
            else:
                transport.close()

    return GuardedHttpToolsProtocol


def uvicorn_options(limits: ConnectionLimits, idle_timeout: float) -> dict[str, Any]:
    """The ``uvicorn.run`` options that apply ``limits`` and the idle (keep-alive) timeout."""
    return {"http": guarded_protocol(limits), "timeout_keep_alive": idle_timeout}


def fit_file_limit(max_connections: int) -> int:
    """The connection cap the process's file limit allows, after raising the soft limit toward the hard one.

    Past the file limit ``accept`` fails and no request, not even the refusal, is answered: the cap must
    sit below it. A lowered cap is said in a warning event.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + _SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return max_connections
    fitted = max(1, soft - _SPARE_FILES)
    emit(
        "server.connection_limit_lowered",
        logging.WARNING,
        max_connections=max_connections,
        file_limit=soft,
        effective=fitted,
    )
    return fitted
