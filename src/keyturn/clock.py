"""Time, injected: the core never calls ``time.time()`` itself."""

from __future__ import annotations

import time
from typing import final


@final
class SystemClock:
    """The wall clock, in epoch seconds."""

    __slots__ = ()

    def now(self) -> float:
        return time.time()


@final
class MonotonicClock:
    """Seconds that never go back (``time.monotonic``): for intervals, never for token times."""

    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()


class FrozenClock:
    """A clock that moves only when told to; for tests."""

    __slots__ = ("_now",)

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self._now = float(now)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def set(self, now: float) -> None:
        self._now = float(now)
