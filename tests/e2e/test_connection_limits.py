"""``keyturn serve`` facing the internet: slow heads, silent and idle connections, huge heads, many sockets.

Each is a finding of an outside probe (issue 18) on a real server with small limits: every connection
that does not send a request in time is closed, a head over the cap is refused with 431 without the
server's memory growing, and at the connection cap a request is refused at once with a logged reason.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ._server import Server, start_server, stop_server

# Measures response times (a deadline the feature promises): never beside another timing test (one
# pytest-xdist worker runs the "timing" group's tests one after another).
pytestmark = pytest.mark.xdist_group("timing")

HEAD_TIMEOUT = 1.5
BODY_TIMEOUT = 1.5
IDLE_TIMEOUT = 1.0
MAX_CONNECTIONS = 24
LIMITS = {
    "KEYTURN_HTTP_HEAD_TIMEOUT": str(HEAD_TIMEOUT),
    "KEYTURN_HTTP_BODY_TIMEOUT": str(BODY_TIMEOUT),
    "KEYTURN_HTTP_IDLE_TIMEOUT": str(IDLE_TIMEOUT),
    "KEYTURN_HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    "KEYTURN_HTTP_MAX_HEADERS": "50",
}
# Generous for a loaded machine, far below "never".
MARGIN = 3.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path / "data", LIMITS)
    try:
        yield running
    finally:
        stop_server(running)


def _connect(server: Server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _closed_by_server(sock: socket.socket, within: float) -> tuple[bool, bytes]:
    """Whether the server closed ``sock`` within ``within`` seconds, and what it sent first."""
    received = b""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            break
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return True, received
        if not chunk:
            return True, received
        received += chunk
    return False, received


def _rss_kib(server: Server) -> int:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _timed_healthz(server: Server) -> float:
    """Seconds a ``/healthz`` request takes on a new connection."""
    started = time.monotonic()
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
    return time.monotonic() - started


def _status_and_body(response: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_slow_request_heads_are_closed_within_the_head_timeout(server: Server) -> None:
    """Slowloris: a header byte now and then kept uvicorn's connection open forever."""
    sockets = [_connect(server) for _ in range(10)]
    started = time.monotonic()
    for sock in sockets:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: keyturn\r\n")
    # Keep trickling until the server gives up, as a slowloris client does.
    open_ = set(sockets)
    while open_ and time.monotonic() - started < HEAD_TIMEOUT + MARGIN:
        for sock in list(open_):
            with contextlib.suppress(OSError):
                sock.sendall(b"X")
            closed, received = _closed_by_server(sock, 0.05)
            if closed:
                assert received == b"" or received.startswith(b"HTTP/1.1 408 "), received
                open_.discard(sock)
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    for sock in sockets:
        sock.close()
    assert not open_, f"{len(open_)} slow heads still open after {elapsed:.1f} s"
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_connections_that_send_nothing_are_closed_within_the_head_timeout(server: Server) -> None:
    """A connection that never sends a byte held a file descriptor until the client let go."""
    sockets = [_connect(server) for _ in range(10)]
    try:
        for sock in sockets:
            closed, received = _closed_by_server(sock, HEAD_TIMEOUT + MARGIN)
            assert closed, "a silent connection outlived the head timeout"
            assert received == b"" or received.startswith(b"HTTP/1.1 408 "), received
    finally:
        for sock in sockets:
            sock.close()


def _trickle_until_closed(sock: socket.socket, within: float) -> tuple[bool, bytes]:
    """Send a body byte now and then until the server closes ``sock`` or ``within`` seconds pass."""
    received = b""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            sock.sendall(b" ")
        closed, chunk = _closed_by_server(sock, 0.2)
        received += chunk
        if closed:
            return True, received
    return False, received


def test_a_trickled_request_body_gets_408_within_the_body_timeout(server: Server) -> None:
    """A client that sent a head then a body byte now and then held the request (and its task) forever."""
    sock = _connect(server)
    try:
        sock.sendall(
            b"POST /auth/login HTTP/1.1\r\nHost: keyturn\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n{"
        )
        closed, received = _trickle_until_closed(sock, BODY_TIMEOUT + MARGIN)
    finally:
        sock.close()
    assert closed, f"a trickled body outlived the body timeout; got {received[:200]!r}"
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert b"\r\ncontent-type: application/json\r\n" in received
    assert _status_and_body(received) == (
        408,
        {
            "error": "invalid_request",
            "error_description": "The request body took too long to arrive.",
            "retryable": False,
        },
    )
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_a_trickled_body_the_app_did_not_wait_for_still_ends_the_connection(server: Server) -> None:
    """An answer sent before the body arrived left the connection to the trickle: each byte reset the
    idle timer. After the body timeout it is closed, with nothing more sent."""
    sock = _connect(server)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: keyturn\r\nContent-Length: 100000\r\n\r\n")
        closed, received = _trickle_until_closed(sock, BODY_TIMEOUT + MARGIN)
    finally:
        sock.close()
    assert closed, "a trickled body outlived the body timeout"
    assert received.startswith(b"HTTP/1.1 200 ")
    assert received.count(b"HTTP/1.1 ") == 1, received


def test_kept_alive_connections_idle_after_a_response_are_closed(server: Server) -> None:
    sock = _connect(server)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: keyturn\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        closed, received = _closed_by_server(sock, IDLE_TIMEOUT + MARGIN)
        assert closed
        assert b"HTTP/1.1" not in received  # at most the rest of the first response
    finally:
        sock.close()


def test_a_16_mib_header_is_refused_with_431_and_memory_does_not_grow(server: Server) -> None:
    """One 16 MiB header was answered 200; 16 connections parked mid-header raised memory by 140 MiB."""
    assert httpx.get(server.url + "/healthz").status_code == 200
    before = _rss_kib(server)
    chunk = b"a" * 65536
    answers: list[bytes] = []
    for _ in range(16):
        sock = _connect(server)
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: keyturn\r\nX-Big: ")
            sent = 0
            while sent < 16 * 1024 * 1024:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                try:
                    sock.sendall(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += len(chunk)
            closed, received = _closed_by_server(sock, 10)
            assert closed
            answers.append(received)
        finally:
            sock.close()
    grown = _rss_kib(server) - before
    for received in answers:
        status, body = _status_and_body(received)
        assert (status, body["error"]) == (431, "invalid_request"), received[:200]
    assert grown < 16 * 1024, f"the server grew by {grown} KiB"


def test_too_many_headers_are_refused_with_431(server: Server) -> None:
    headers = {f"x-h{i}": "1" for i in range(60)}
    response = httpx.get(server.url + "/healthz", headers=headers)
    assert response.status_code == 431
    assert response.json()["error"] == "invalid_request"
    assert httpx.get(server.url + "/healthz", headers=dict(list(headers.items())[:40])).status_code == 200


def test_at_the_connection_cap_a_request_is_refused_at_once_and_the_reason_logged(server: Server) -> None:
    """1,100 idle connections made real requests fail, and nothing was logged."""
    # A request below the cap, on this machine as loaded as it is now: the yardstick for "at once".
    alone = min(_timed_healthz(server) for _ in range(3))
    sockets = [_connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.3)  # let the server accept them all
        started = time.monotonic()
        response = httpx.get(server.url + "/healthz", timeout=10)
        took = time.monotonic() - started
        # At once: within 2 s, or ten requests' time on a machine loaded enough to make that longer (a
        # request alone, with its connection, took 18 ms quiet, 23 ms beside two CPU hogs, and the refusal
        # 18 and 42 ms); a server that waited for a slot would answer only once the squatters' head timeout
        # closed them (and answer 200).
        print(f"\nrefused at the cap in {took:.3f}s; a request alone took {alone:.3f}s")
        assert took < max(2.0, 10 * alone), (took, alone)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"] == "server_error"
        assert response.json()["retryable"] is True
        log = server.log.read_text()
        assert '"server.connection_limit"' in log or "server.connection_limit" in log
    finally:
        for sock in sockets:
            sock.close()
    # The squatters are gone once closed (or timed out): the service answers again.
    deadline = time.monotonic() + HEAD_TIMEOUT + MARGIN
    while httpx.get(server.url + "/healthz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the service did not recover"
        time.sleep(0.1)


def test_a_head_over_the_cap_that_arrives_in_one_read_is_refused_with_431(server: Server) -> None:
    """A head parsed whole from one read is judged by its size too, not only one that trickles in."""
    response = httpx.get(server.url + "/healthz", headers={"x-big": "a" * 100_000})
    assert response.status_code == 431
    assert response.json()["error"] == "invalid_request"
    assert httpx.get(server.url + "/healthz", headers={"x-big": "a" * 20_000}).status_code == 200
