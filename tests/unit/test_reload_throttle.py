"""The key reloader itself: single flight, at most one reload start per interval, forged ids remembered."""

from __future__ import annotations

import asyncio

import pytest

from keyturn._reload import MIN_INTERVAL, KeyReloader
from keyturn.clock import FrozenClock

pytestmark = pytest.mark.anyio


class Harness:
    """A reloader over a fake key store: ``stored`` is the store's truth, ``installed`` what this process
    loaded last; the source records when (on the frozen clock) each load started."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.starts: list[float] = []
        self.slept: list[float] = []
        self.stored: set[str] = set()
        self.installed: frozenset[str] = frozenset()
        self.hold: asyncio.Event | None = None  # when set by a test, a load waits for it before returning

        async def source() -> frozenset[str]:
            self.starts.append(clock.now())
            snapshot = frozenset(self.stored)  # what the store holds when the read happens
            await asyncio.sleep(0)  # let other callers arrive while the load is under way
            if self.hold is not None:
                await self.hold.wait()
            return snapshot

        def install(ring: frozenset[str]) -> None:
            self.installed = ring

        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)
            clock.advance(seconds)

        self.reloader = KeyReloader(source, clock, install, sleep=sleep)  # type: ignore[arg-type]

    async def find(self, kid: str) -> bool:
        return await self.reloader.find(kid, lambda: kid in self.installed)


async def test_reload_starts_are_at_least_the_interval_apart(clock: FrozenClock) -> None:
    """However many unknown ids arrive, the store is read at most once per interval."""
    h = Harness(clock)
    for i in range(5):
        assert await h.find(f"made-up-{i}") is False
        clock.advance(0.1)

    gaps = [b - a for a, b in zip(h.starts, h.starts[1:], strict=False)]
    assert len(h.starts) == 5
    assert all(gap >= MIN_INTERVAL for gap in gaps), gaps
    assert h.slept  # the later ones waited for their turn instead of reading at once


async def test_callers_during_a_reload_share_it(clock: FrozenClock) -> None:
    """A burst of tokens with one new key id costs one store read."""
    h = Harness(clock)
    h.stored.add("new-key")
    answers = await asyncio.gather(*(h.find("new-key") for _ in range(30)))
    assert answers == [True] * 30
    assert len(h.starts) == 1


async def test_an_id_a_later_reload_did_not_find_is_refused_without_a_read(clock: FrozenClock) -> None:
    """Replaying one forged id costs nothing after the first time."""
    h = Harness(clock)
    assert await h.find("forged") is False
    clock.advance(10)
    for _ in range(20):
        assert await h.find("forged") is False
    assert len(h.starts) == 1


async def test_a_reload_begun_before_the_token_arrived_does_not_decide(clock: FrozenClock) -> None:
    """A reload that read the store before a rotation cannot have seen its key: a newer one must run,
    and the token must pass."""
    h = Harness(clock)
    h.hold = asyncio.Event()
    first = asyncio.ensure_future(h.reloader.reload())  # the periodic reload, already reading
    for _ in range(3):  # let it start: the wrapper task, then the load task
        await asyncio.sleep(0)
    assert h.starts == [clock.now()]
    clock.advance(0.01)
    h.stored.add("rotated-key")  # another process rotates now
    waiting = asyncio.ensure_future(h.find("rotated-key"))  # and a token signed with it arrives
    for _ in range(3):  # it joins the load under way
        await asyncio.sleep(0)
    assert not waiting.done()
    h.hold.set()

    await first
    assert await waiting is True
    assert len(h.starts) == 2
    assert h.starts[1] - h.starts[0] >= MIN_INTERVAL
