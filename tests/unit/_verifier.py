"""What the tests of ``AccessTokenVerifier`` with real parts share: a verifier on a ``TestService``'s
memory store and clock (its revocation feed optionally made to fail), and ways to wait for the verifier's
own thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from keyturn.errors import KeyturnError
from keyturn.middleware import AccessTokenVerifier, StoreKeys, StoreRevocations
from keyturn.revocation import FeedPage, RevocationSource
from keyturn.testing import TestService

POLL = 0.05
"""The feed is polled this often (seconds) in the verifier tests."""
PATIENCE = 10.0
"""How long (seconds) a test waits for the verifier's thread to catch up before it gives up."""


class FlakyFeed:
    """A real revocation source that records what it was asked and fails while ``failing`` is set."""

    def __init__(self, inner: RevocationSource) -> None:
        self.inner = inner
        self.failing = False
        self.asked: list[int] = []
        self.closes = 0

    async def since(self, seq: int) -> FeedPage:
        self.asked.append(seq)
        if self.failing:
            raise OSError("the revocation feed is out of reach (injected)")
        return await self.inner.since(seq)

    async def close(self) -> None:
        self.closes += 1
        await self.inner.close()


def verifier_on(ts: TestService, **options: Any) -> AccessTokenVerifier:
    """A verifier reading ``ts``'s store, on ``ts``'s clock, polling the feed every ``POLL`` seconds."""
    settings: dict[str, Any] = {"revocation_poll_interval": POLL, "key_refetch_interval": 0.2}
    settings.update(options)
    return AccessTokenVerifier.for_store(ts.store, clock=ts.clock, **settings)


def flaky_verifier(ts: TestService, **options: Any) -> tuple[AccessTokenVerifier, FlakyFeed]:
    """Like :func:`verifier_on`, with the feed wrapped in a :class:`FlakyFeed`."""
    feed = FlakyFeed(StoreRevocations(ts.store, ts.clock.now))
    settings: dict[str, Any] = {"revocation_poll_interval": POLL, "key_refetch_interval": 0.2}
    settings.update(options)
    verifier = AccessTokenVerifier(StoreKeys(ts.store), feed, clock=ts.clock, **settings)
    return verifier, feed


def outcome(verifier: AccessTokenVerifier, token: str) -> str:
    """``"ok"`` or the wire code the verifier answers ``token`` with."""
    try:
        verifier.verify(token)
    except KeyturnError as exc:
        return exc.code
    return "ok"


async def eventually(check: Callable[[], bool], what: str, patience: float = PATIENCE) -> None:
    """Wait until ``check()`` holds; fail (saying ``what`` was awaited) after ``patience`` seconds."""
    deadline = time.monotonic() + patience
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {patience}s in vain until {what}")
        await anyio.sleep(0.02)


def verifier_threads() -> int:
    return sum(t.name == "keyturn-verifier" and t.is_alive() for t in threading.enumerate())
