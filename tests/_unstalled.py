"""Seconds a loop of probes has waited, less what a stalled machine took from it.

A test that waits for something to happen "within N seconds" (a revocation reaching a verifier, say) fails
on a loaded CI worker when a process of the test's stalls for a second or two. ``Unstalled`` counts each
probe and each pause between probes for at most what it takes on a running machine (``step``, and the
pause plus ``step``): a stall, of the process probed (its answer waits) or of the test's own (its pause
overruns), is not counted. What is counted in full: every pause up to ``seconds + step``, and every probe
up to ``step``. A probe slower than ``step`` on a running machine counts as ``step`` only, so with such
probes the count runs behind the wall clock (by at most what each probe took over ``step``); it still
grows by at least the pause each round, so a thing that takes too long still runs the count past the
bound, only later than the bound's own seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Unstalled:
    def __init__(self, step: float = 0.25) -> None:
        self.step = step
        self.seconds = 0.0
        """The seconds counted so far."""
        self.stalled = 0.0
        """The seconds not counted (what probes and pauses took over their share)."""

    def _count(self, took: float, share: float) -> None:
        self.seconds += min(took, share)
        self.stalled += max(0.0, took - share)

    def probe(self, call: Callable[[], T]) -> T:
        """``call()``, counting at most ``step`` for it."""
        started = time.monotonic()
        try:
            return call()
        finally:
            self._count(time.monotonic() - started, self.step)

    def pause(self, seconds: float) -> None:
        """``time.sleep(seconds)``, counting at most ``seconds + step`` for it."""
        started = time.monotonic()
        time.sleep(seconds)
        self._count(time.monotonic() - started, seconds + self.step)
