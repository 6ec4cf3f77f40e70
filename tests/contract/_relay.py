"""A TCP relay on loopback between a Redis store and the test Redis: it can hold Redis's replies back
(``stall``/``resume``), cut connections instead of passing replies on (``cut``), and keeps what the store
sends; and :data:`BOUND`, the short reply timeout of the tests that use it (the ``short_bound`` fixture)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from .backends import REDIS_URL

BOUND = 0.5
"""The Redis store's reply timeout in the relay's tests (seconds), shorter than its own to keep them quick:
set by the ``short_bound`` fixture (``conftest``)."""


class Relay:
    def __init__(self) -> None:
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.cutting = False
        """While set, a reply from Redis is dropped and its connection closed (both ways)."""
        self.port = 0
        self.sent: list[bytes] = []
        """What the store sent, on any connection, as read: each a write of the store's (or several that
        arrived together, or part of one that did not fit in one read)."""
        self._tasks: set[asyncio.Task[None]] = set()

    def stall(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    def cut(self, cutting: bool = True) -> None:
        self.cutting = cutting

    def count(self) -> None:
        """Start counting afresh."""
        self.sent.clear()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, replies: bool) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if replies:
                    await self.flowing.wait()
                    if self.cutting:
                        return
                else:
                    self.sent.append(data)
                writer.write(data)
                await writer.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parts = urlsplit(REDIS_URL)
        up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port or 6379)
        pipes = {
            asyncio.ensure_future(self._pipe(reader, up_writer, replies=False)),
            asyncio.ensure_future(self._pipe(up_reader, writer, replies=True)),
        }
        self._tasks |= pipes
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for pipe in pipes:
            pipe.cancel()
        writer.close()
        up_writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Relay]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for task in self._tasks:
                task.cancel()

    def url(self, prefix: str) -> str:
        db = urlsplit(REDIS_URL).path or "/0"
        return f"redis://127.0.0.1:{self.port}{db}?prefix={prefix}"
