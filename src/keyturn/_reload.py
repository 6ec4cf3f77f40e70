"""Reloading keys when a token names a key this process does not know yet.

Another process of the service may have rotated the keys (``keyturn keys rotate``) and signed with the new
ones before this process reloaded its key ring from the store; a resource server's validator meets
tokens signed with keys newer than the JWKS it fetched. A token naming an unknown ``kid`` therefore
triggers a reload, with three guards:

- single flight: callers that arrive while a reload is under way or scheduled wait for it;
- reloads start at most once per ``min_interval`` seconds: a caller inside that window waits for the next one
  (a fraction of a second), so a real new key is never mistaken for a forged one and a flood of made-up
  ids costs at most one store read or JWKS fetch per interval;
- a ``kid`` that a reload begun after the token arrived did not find is remembered as unknown (a bounded
  set) and refused at once from then on.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from .typing import Clock

T = TypeVar("T")

MIN_INTERVAL = 1.0
"""Seconds between the starts of two reloads, unless told otherwise."""

MAX_MISSING = 4096
"""How many key ids known to be unknown are remembered."""


class KeyReloader(Generic[T]):
    """Single-flight, rate-limited reloads of keys of type ``T`` (a key ring, a JWKS) from ``source``."""

    def __init__(
        self,
        source: Callable[[], Awaitable[T]],
        clock: Clock,
        install: Callable[[T], None],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        min_interval: float = MIN_INTERVAL,
    ) -> None:
        self._source = source
        self._min_interval = min_interval
        self._clock = clock
        self._sleep = sleep  # tests with a frozen clock pass one that moves the clock instead
        self._install = install
        self._next: asyncio.Future[None] | None = None
        self._next_starts = float("-inf")
        self._last_start = float("-inf")
        self._missing: OrderedDict[str, None] = OrderedDict()

    async def reload(self) -> None:
        """Reload as soon as allowed (or wait for the reload under way or scheduled)."""
        await asyncio.shield(self._next or self._schedule())

    async def find(self, kid: str, known: Callable[[], bool]) -> bool:
        """Whether ``kid`` is known after a reload that began after this call."""
        if kid in self._missing:
            return False
        arrived = self._clock.now()
        while True:
            pending = self._next or self._schedule()
            starts = self._next_starts
            await asyncio.shield(pending)
            if known():
                return True
            if starts >= arrived:
                self._remember_missing(kid)
                return False

    async def fetch_now(self) -> float | None:
        """Wait for the reload under way or one begun now, and return when it began (clock time);
        None, at once, if the interval allows no reload yet."""
        if self._next is None:
            if self._clock.now() - self._last_start < self._min_interval:
                return None
            self._schedule()
        assert self._next is not None
        starts = self._next_starts
        await asyncio.shield(self._next)
        return starts

    def cancel(self) -> None:
        """Cancel a reload under way or scheduled (when its owner shuts down)."""
        if self._next is not None:
            self._next.cancel()

    def _remember_missing(self, kid: str) -> None:
        self._missing[kid] = None
        while len(self._missing) > MAX_MISSING:
            self._missing.popitem(last=False)

    def _schedule(self) -> asyncio.Future[None]:
        now = self._clock.now()
        delay = max(0.0, self._last_start + self._min_interval - now)
        self._next_starts = self._last_start = now + delay
        self._next = asyncio.ensure_future(self._load(delay))
        return self._next

    async def _load(self, delay: float) -> None:
        try:
            if delay:
                await self._sleep(delay)
            self._install(await self._source())
        finally:
            self._next = None


class FreshReads(Generic[T]):
    """Reads shared by concurrent callers, each answered by a read begun after it asked.

    At most one read runs at a time: a caller arriving during a read waits for it to end and shares the
    next one. So a flood of callers costs one read at a time, and no caller gets an answer older than its
    own question.
    """

    def __init__(self, read: Callable[[], Awaitable[T]]) -> None:
        self._read = read
        self._generation = 0
        self._running: tuple[int, asyncio.Future[T]] | None = None

    async def __call__(self) -> T:
        wanted = self._generation + 1
        while True:
            if self._running is not None and self._running[1].done():
                # Finished, its callback not yet run: awaiting it would not yield, so this loop would spin.
                self._running = None
            if self._running is None:
                self._generation += 1
                started = asyncio.ensure_future(self._read())
                self._running = (self._generation, started)
                started.add_done_callback(self._finished)
            generation, future = self._running
            try:
                result = await asyncio.shield(future)
            except Exception:
                if generation >= wanted:
                    raise
                continue  # a read begun before this call failed: take the next one
            if generation >= wanted:
                return result

    def _finished(self, future: asyncio.Future[T]) -> None:
        if self._running is not None and self._running[1] is future:
            self._running = None
