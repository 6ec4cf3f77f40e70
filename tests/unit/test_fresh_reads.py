"""``FreshReads``: the JWKS route's reads of the store, shared but never older than the question."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from keyturn._reload import FreshReads

pytestmark = pytest.mark.anyio


class Slow:
    """A read that returns how many reads began before it, and waits until released."""

    def __init__(self) -> None:
        self.began = 0
        self.running = 0
        self.most_at_once = 0
        self.release = anyio.Event()
        self.fail_next = False

    async def __call__(self) -> int:
        self.began += 1
        number = self.began
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await self.release.wait()
            if self.fail_next:
                self.fail_next = False
                raise OSError("the store is out of reach")
            return number
        finally:
            self.running -= 1


async def test_callers_during_a_read_share_the_next_one_and_reads_never_overlap() -> None:
    read = Slow()
    reads = FreshReads(read)
    answers: dict[str, int] = {}

    async def ask(name: str) -> None:
        answers[name] = await reads()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(ask, "first")
        await anyio.sleep(0.01)  # the first read has begun
        for i in range(20):
            tasks.start_soon(ask, f"later-{i}")
        await anyio.sleep(0.01)
        read.release.set()

    assert answers["first"] == 1
    assert {answers[f"later-{i}"] for i in range(20)} == {2}  # one read begun after they asked
    assert read.began == 2
    assert read.most_at_once == 1


async def test_a_failed_read_fails_its_callers_and_the_next_caller_reads_again() -> None:
    read = Slow()
    read.release.set()
    read.fail_next = True
    reads = FreshReads(read)

    with pytest.raises(OSError, match="out of reach"):
        await reads()
    assert await reads() == 2


@pytest.mark.timeout(20)  # before the fix this spun forever without yielding; only the timeout ends it
async def test_a_caller_arriving_between_a_read_ending_and_its_callback_gets_a_new_read() -> None:
    # The read has finished, but its done callbacks (which clear the running read) have not run yet: the
    # caller must start the next read, not spin on the finished one (that hung the service at 100 % CPU).
    gate = asyncio.get_running_loop().create_future()
    began = 0

    async def read() -> int:
        nonlocal began
        began += 1
        await gate
        return began

    reads = FreshReads(read)
    first = asyncio.ensure_future(reads())
    await asyncio.sleep(0)  # the first read waits at the gate
    gate.set_result(None)
    await asyncio.sleep(0)  # the read finishes; its callbacks are queued behind this coroutine
    assert await reads() == 2
    assert await first == 1
