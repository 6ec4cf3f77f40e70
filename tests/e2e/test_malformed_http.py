"""Requests ``keyturn serve``'s HTTP parser refuses still get the one JSON error body (issue 18).

uvicorn answers a request its parser cannot read with a plain-text 400 ("Invalid HTTP request
received."), or, when the defect is in the body, after the app has started, with nothing at all. Each
case here is sent over a raw socket to a real server: the answer is 400 ``invalid_request`` in the body
``keyturn.http`` renders, with ``Connection: close``, and the connection is then closed.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from ._server import Server, start_server, stop_server

LOGIN = b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
REFRESH = b"POST /auth/refresh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"

MALFORMED = {
    "non-UTF-8 request line": b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    "TLS hello on the plain port": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    "garbage request line": b"HELLO WORLD\r\n\r\n",
    "unknown HTTP version": b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
    "Content-Length: abc": LOGIN + b"Content-Length: abc\r\n\r\n{}",
    "two Content-Lengths": LOGIN + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "Content-Length and chunked": LOGIN + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad chunk size": LOGIN + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "bad chunk size after a good chunk": LOGIN
    + b"Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\nq\r\n}\r\n0\r\n\r\n",
    # The refresh is answered straight from its endpoint (server/shortcut.py, front.py), not its route.
    "bad chunk size on the refresh": REFRESH + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "bad chunk size after a good chunk on the refresh": REFRESH
    + b"Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\nq\r\n}\r\n0\r\n\r\n",
    "control byte in a header name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad\x01: v\r\n\r\n",
    "NUL in a header value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n",
    "space before the colon": b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("malformed") / "data")
    try:
        yield running
    finally:
        stop_server(running)


def _exchange(server: Server, raw: bytes) -> bytes:
    """Send ``raw``, then read until the server closes the connection."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(raw)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


@pytest.mark.parametrize("raw", list(MALFORMED.values()), ids=list(MALFORMED))
def test_a_request_the_parser_refuses_gets_400_with_the_json_error_body(server: Server, raw: bytes) -> None:
    answer = _exchange(server, raw)
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    assert status_line.split()[1] == "400", answer
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    document = json.loads(body)
    assert document["error"] == "invalid_request"
    assert document["retryable"] is False
    assert set(document) == {"error", "error_description", "retryable"}
    # A refused body is no server error: the app is told the client went away, and says nothing loud.
    log = server.log.read_text()
    assert "Exception in ASGI application" not in log
    assert "unexpected error" not in log
