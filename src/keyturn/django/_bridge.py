"""One event loop per process, on a thread of its own, where Keyturn's async core runs inside Django.

The core (``SessionService``, the stores) is async and its stores belong to the loop that opened them. A
Django process may be WSGI (gunicorn's sync workers: request threads with no loop) or ASGI (uvicorn: one
loop, with sync code on worker threads). Both reach the same loop here: a sync caller blocks its own thread
on :meth:`Bridge.run`; an async caller awaits :meth:`Bridge.arun`, which leaves its loop free meanwhile.
No loop is ever started per request. After ``fork()`` (gunicorn's workers) the child starts a loop of
its own on first use: the parent's thread did not come along.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["Bridge", "on_event_loop"]

T = TypeVar("T")


def on_event_loop() -> bool:
    """Whether the calling thread is running an event loop (a Django ASGI handler's, say)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Bridge:
    """A daemon thread running an event loop, started on first use (again in a forked child)."""

    def __init__(self, name: str = "keyturn-django") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        os.register_at_fork(after_in_child=self._forget)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop, started if it is not running in this process yet."""
        loop = self._loop
        if loop is not None and self._pid == os.getpid():
            return loop
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                self._start()
            assert self._loop is not None
            return self._loop

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for it, from a thread that runs no event loop.

        What ``asyncio.run_coroutine_threadsafe(coro, loop).result()`` does, with one lock for the hand-back
        instead of a ``concurrent.futures.Future`` chained to the task (its condition, its callbacks): a
        WSGI request makes this trip on every call to the core, and the chain cost the loop's thread about
        a sixth of its time per refresh (py-spy, bench/compare/profile_django.py).
        """
        if on_event_loop():
            coro.close()
            raise RuntimeError("Bridge.run() would block an event loop: await Bridge.arun() there")
        loop = self.loop
        done = threading.Lock()
        done.acquire()
        outcome: list[asyncio.Future[T] | BaseException] = []

        def finished(task: asyncio.Future[T]) -> None:
            outcome.append(task)
            done.release()

        def start() -> None:
            try:
                loop.create_task(coro).add_done_callback(finished)
            except BaseException as exc:  # noqa: BLE001  # handed to the waiting caller, as asyncio does
                outcome.append(exc)
                done.release()

        loop.call_soon_threadsafe(start)
        done.acquire()
        (result,) = outcome
        if isinstance(result, BaseException):
            raise result
        return result.result()

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop; the caller's own loop goes on serving meanwhile."""
        if self.in_loop_thread():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(started.set)
            loop.run_forever()

        thread = threading.Thread(target=serve, name=self._name, daemon=True)
        thread.start()
        started.wait()
        self._loop, self._thread, self._pid = loop, thread, os.getpid()

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._loop = self._thread = None
        self._pid = 0
