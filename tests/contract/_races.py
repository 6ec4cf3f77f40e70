"""Real races for the contract suite: calls made at one moment from stores on threads of their own, or in
processes of their own, as several workers of one service would make them.

``call(store, n)`` makes the ``n``-th call (0 up to the total) on ``store``; every answer comes back, in
no particular order. In processes ``call`` must be a module-level function, so that it pickles.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from keyturn.store import open_store
from keyturn.typing import Backend

from .backends import BackendUnderTest

T = TypeVar("T")
Call = Callable[[Backend, int], Awaitable[T]]


def in_threads(
    backend: BackendUnderTest, call: Call[T], *, threads: int, per_thread: int, open_at_once: bool = False
) -> list[T]:
    """``threads`` threads, each with a store of its own on ``backend`` (its own connections, as a process
    would have), wait for each other, then make ``per_thread`` calls at once; with ``open_at_once`` they
    wait before opening their stores, so that the opening (a migration, say) is part of the race."""
    answers: list[T] = []
    lock, start = threading.Lock(), threading.Barrier(threads, timeout=60)

    def caller(index: int) -> None:
        store, first = backend.new_store(), index * per_thread
        if open_at_once:
            start.wait()
        wait = (lambda: None) if open_at_once else start.wait
        got = asyncio.run(_at_once(store, call, first, per_thread, wait))
        with lock:
            answers.extend(got)

    running = [threading.Thread(target=caller, args=(i,)) for i in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join(120)
    assert not any(thread.is_alive() for thread in running)
    assert len(answers) == threads * per_thread, "a thread failed: see its exception above"
    return answers


async def at_once(
    backend: BackendUnderTest, store: Backend, call: Call[T], *, threads: int, per_thread: int
) -> list[T]:
    """:func:`in_threads`; on ``memory://`` (one store, which never awaits inside a call) as tasks on
    ``store``, which checks the count: the real races are the other backends'."""
    if backend.shared is not None:
        return list(await asyncio.gather(*(call(store, n) for n in range(threads * per_thread))))
    return in_threads(backend, call, threads=threads, per_thread=per_thread)


def in_processes(url: str, call: Call[T], *, processes: int, per_process: int) -> list[T]:
    """``processes`` spawned processes, each opening the store at ``url``, wait for each other, then make
    ``per_process`` calls at once."""
    spawn = multiprocessing.get_context("spawn")
    with spawn.Manager() as manager, ProcessPoolExecutor(processes, mp_context=spawn) as pool:
        ready = manager.Barrier(processes, timeout=90)
        futures = [
            pool.submit(_in_a_process, url, call, first, per_process, ready)
            for first in range(0, processes * per_process, per_process)
        ]
        return [answer for future in futures for answer in future.result(timeout=120)]


def _in_a_process(url: str, call: Call[T], first: int, count: int, ready: threading.Barrier) -> list[T]:
    return asyncio.run(_at_once(open_store(url), call, first, count, ready.wait))


async def _at_once(
    store: Backend, call: Call[T], first: int, count: int, wait: Callable[[], object]
) -> list[T]:
    await store.open()
    try:
        wait()
        return list(await asyncio.gather(*(call(store, n) for n in range(first, first + count))))
    finally:
        await store.close()
