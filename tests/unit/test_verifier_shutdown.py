"""A verifier closed while it is still starting shuts down cleanly: nothing left pending on its loop.

On a busy machine ``start`` can give up waiting for the first key fetch (its ``timeout``) and an app can shut
down before that fetch ends. The start under way must then be cancelled with the rest: left running, it
would start the background tasks on sources already closed, and its loop, closed under it, would drop
pending tasks ("Task was destroyed but it is pending!", printed whenever they are collected, at
interpreter exit as often as not).
"""

from __future__ import annotations

import asyncio
import threading

from keyturn.middleware import AccessTokenVerifier
from keyturn.middleware._io_thread import IOThread
from keyturn.middleware._sources import Keys
from keyturn.revocation import FeedPage

PATIENCE = 10.0
"""How long (seconds) a test waits for a thread before it gives up."""


class Stuck:
    """A key and revocation source whose calls never answer; counts the calls and the closes."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.calls = 0
        self.closes = 0
        self.cancelled = 0

    async def _hang(self) -> None:
        self.calls += 1
        self.entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def fetch(self) -> Keys:
        await self._hang()
        raise AssertionError("unreachable")

    async def since(self, seq: int) -> FeedPage:
        await self._hang()
        raise AssertionError("unreachable")

    async def close(self) -> None:
        self.closes += 1


def test_a_verifier_closed_while_starting_cancels_the_start_and_leaves_nothing_pending() -> None:
    """``close`` during ``start``: the start returns, its fetches are cancelled, no task is left behind."""
    source = Stuck()
    verifier = AccessTokenVerifier(source, source, timeout=60.0)
    starting = threading.Thread(target=verifier.start, daemon=True)
    starting.start()
    assert source.entered.wait(PATIENCE), "the start never fetched"
    io = verifier._io
    assert io is not None

    verifier.close()
    starting.join(PATIENCE)

    assert not starting.is_alive(), "start() still waits for a start that close() should have cancelled"
    assert io.loop.is_closed()
    assert asyncio.all_tasks(io.loop) == set(), "tasks left pending on the closed loop"
    assert source.cancelled == source.calls == 2  # the first key fetch and the first feed read
    assert source.closes == 2  # closed once as the key source, once as the feed


def test_an_io_thread_cancels_what_still_runs_when_it_stops() -> None:
    """Work still pending on the loop at ``stop`` is cancelled and unwinds before the loop closes."""
    io = IOThread()
    unwound = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            unwound.set()

    started = threading.Event()

    async def begin() -> None:
        asyncio.get_running_loop().create_task(forever())  # not awaited: like a background task
        started.set()

    io.submit(begin()).result(PATIENCE)
    assert started.is_set()
    io.stop()

    assert unwound.is_set(), "the pending task was dropped, not cancelled"
    assert io.loop.is_closed()
    assert asyncio.all_tasks(io.loop) == set()
