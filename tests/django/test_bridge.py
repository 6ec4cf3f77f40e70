"""The bridge from a WSGI request's thread to Keyturn's loop thread (``keyturn.django._bridge``): every
core step of a sync view makes this trip, so it is lean; these check that it still answers right."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from keyturn.django._bridge import Bridge


async def _echo(value: int, pause: float = 0) -> int:
    await asyncio.sleep(pause)  # a real suspension on the loop, not only a coroutine that returns at once
    return value


async def _fail() -> None:
    raise ValueError("from the loop")


def test_run_returns_the_result_and_raises_the_error_of_the_coroutine() -> None:
    bridge = Bridge("keyturn-test-bridge")
    assert bridge.run(_echo(7)) == 7
    assert bridge.run(_echo(8, 0.01)) == 8
    with pytest.raises(ValueError, match="from the loop"):
        bridge.run(_fail())


def test_a_step_the_loop_cannot_start_is_an_error_not_a_wait() -> None:
    bridge = Bridge("keyturn-test-bridge")
    not_a_coroutine: Any = object()
    with pytest.raises(TypeError):
        bridge.run(not_a_coroutine)


def test_many_threads_each_get_their_own_answers() -> None:
    """Request threads (gunicorn's gthread workers, say) share the one loop."""
    bridge = Bridge("keyturn-test-bridge")
    wrong: list[tuple[int, int]] = []

    def requests(first: int) -> None:
        for value in range(first, first + 200):
            got = bridge.run(_echo(value, 0.0005 if value % 7 == 0 else 0))
            if got != value:
                wrong.append((value, got))

    threads = [threading.Thread(target=requests, args=(n * 1000,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    assert wrong == []


def test_run_refuses_to_block_an_event_loop() -> None:
    bridge = Bridge("keyturn-test-bridge")

    async def on_a_loop() -> None:
        coro = _echo(1)
        with pytest.raises(RuntimeError, match="arun"):
            bridge.run(coro)
        assert coro.cr_frame is None  # closed, not left un-awaited
        assert await bridge.arun(_echo(2)) == 2

    asyncio.run(on_a_loop())
