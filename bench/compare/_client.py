"""The load generator's connection: ``bench/_http.py``'s keep-alive client, also for servers that close.

Both systems get the same client: HTTP/1.1, one persistent connection per session, the request written
in one go. Keyturn (uvicorn) keeps the connection open; gunicorn's sync workers answer every request
with ``Connection: close``, so this client then opens a new connection for the next request, and the
time to open it is part of that request's measured time, as it is for any real client of such a server.

Unlike ``bench/_http.py`` it does not insist on a JSON body (Django answers a 500 with an HTML page):
:class:`Reply` keeps the status, the parsed JSON (or ``None``) and a short reason for tallies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _http import Connection as _KeepAliveConnection

TIMEOUT = 30.0
"""Seconds a request may wait for its answer before it counts as a transport error."""
TRANSPORT_ERROR = 0
"""The status of a :class:`Reply` when no HTTP answer came (connection refused, reset or closed)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: status (0 when none came), the JSON body if there was one, the raw body's start."""

    status: int
    body: Any
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def reason(self) -> str:
        """For tallies: ``"200"``, ``"401 token_not_valid"``, ``"500 database is locked"`` and so on."""
        if self.status == TRANSPORT_ERROR:
            return f"transport: {self.text}"
        if isinstance(self.body, dict):
            code = self.body.get("error") or self.body.get("code")
            if code:
                return f"{self.status} {code}"
        if self.status >= 500 and "locked" in self.text:
            return f"{self.status} database is locked"
        return str(self.status)


class Connection(_KeepAliveConnection):
    """One connection, one request at a time; reopened when the server said ``Connection: close``."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.opened = 0
        """How many TCP connections this client has opened."""

    async def connect(self) -> None:
        """Open the connection now (before a race, so that every racer is ready to send at once)."""
        if self._writer is None:
            await self._connect()
            self.opened += 1

    async def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        wait_s: float = TIMEOUT,
    ) -> Reply:
        """Send one request; a transport failure or no answer within ``wait_s`` seconds is a :class:`Reply`
        with status 0, never an exception (the connection is dropped, the next request opens another)."""
        try:
            async with asyncio.timeout(wait_s):  # not wait_for: a task per request, on the measured CPU
                return await self._exchange(method, path, body, headers)
        except (OSError, ValueError, EOFError, TimeoutError) as exc:
            await self._drop()
            return Reply(TRANSPORT_ERROR, None, type(exc).__name__)

    async def _exchange(self, method: str, path: str, body: Any, headers: dict[str, str] | None) -> Reply:
        await self.connect()
        reader, writer = self._reader, self._writer
        assert reader is not None
        assert writer is not None
        payload = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        try:  # the whole head at once: one wait, not one a line (the load generator's CPU is measured too)
            head_bytes = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as cut:
            if not cut.partial:
                raise ConnectionError("closed before answering") from cut
            raise
        except asyncio.LimitOverrunError as long:  # a head over 64 KiB: as readline would, a ValueError
            raise ValueError("the answer's head is too long") from long
        status_line, *lines = head_bytes[:-4].split(b"\r\n")
        status = int(status_line.split()[1])
        length: int | None = None
        close = chunked = False
        for line in lines:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value == b"close"
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value
        if chunked:
            data = await _read_chunked(reader)
        elif length is not None:
            data = await reader.readexactly(length)
        else:
            data, close = await reader.read(), True
        if close:
            await self._drop()
        return _reply(status, data)

    async def _drop(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._writer = self._reader = None


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        if size == 0:
            await reader.readline()
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readline()


def _reply(status: int, data: bytes) -> Reply:
    text = data[:200].decode(errors="replace")
    try:
        return Reply(status, json.loads(data) if data else None, text)
    except ValueError:
        return Reply(status, None, text)
