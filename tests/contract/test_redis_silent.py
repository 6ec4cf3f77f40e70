"""A Redis that accepts connections and then says nothing: every call of the store still ends, in time.

The store's client has no socket timeout of its own; each call is bounded by ``guarded()`` (the store's
``REPLY_TIMEOUT``). Here a real relay stands between the store and the real Redis and can go silent: it
keeps every connection open and reads what the store sends, but passes nothing on either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import pytest

from keyturn.errors import StoreUnavailable
from keyturn.ratelimit import RateLimit
from keyturn.store.redis import RedisStore, _records, _store

from .backends import REDIS_URL, require_server

pytestmark = pytest.mark.anyio

BOUND = 0.5
"""The reply timeout for these tests (seconds), shorter than the store's own to keep them quick."""
LIMIT = RateLimit(10, 60.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the store is asyncio's (redis.asyncio)


class Relay:
    """A TCP relay on loopback to the test Redis that can be made silent (for new and open connections)."""

    def __init__(self) -> None:
        self.silent = False
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if not self.silent:
                    writer.write(data)
                    await writer.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parts = urlsplit(REDIS_URL)
        up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port or 6379)
        pipes = [
            asyncio.ensure_future(self._pipe(reader, up_writer)),
            asyncio.ensure_future(self._pipe(up_reader, writer)),
        ]
        self._tasks.update(pipes)
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

    def url(self) -> str:
        db = urlsplit(REDIS_URL).path or "/0"
        return f"redis://127.0.0.1:{self.port}{db}?prefix=kt-test-silent:"


@pytest.fixture(autouse=True)
def short_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    require_server("redis")
    monkeypatch.setattr(_records, "REPLY_TIMEOUT", BOUND)
    monkeypatch.setattr(_store, "REPLY_TIMEOUT", BOUND)


async def test_opening_a_store_on_a_silent_server_fails_in_time() -> None:
    relay = Relay()
    relay.silent = True
    async with relay.running():
        store = RedisStore.from_url(relay.url())
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.open()
        assert time.monotonic() - started < BOUND + 2


async def test_a_call_to_a_server_gone_silent_fails_in_time_and_the_store_recovers() -> None:
    relay = Relay()
    async with relay.running():
        store = RedisStore.from_url(relay.url())
        await store.open()
        try:
            assert await store.get_session("no-such-session") is None
            relay.silent = True
            # A plain command, and a script (the refresh path's kind of call).
            calls: list[Callable[[], Awaitable[object]]] = [
                lambda: store.get_session("no-such-session"),
                lambda: store.rate_limit_take("k", LIMIT, time.time()),
            ]
            for call in calls:
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    await call()
                assert time.monotonic() - started < BOUND + 2
            relay.silent = False
            assert await store.get_session("no-such-session") is None
        finally:
            await store.close()
