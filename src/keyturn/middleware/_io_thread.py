"""The verifier's own thread: a daemon thread running an event loop, where keys are fetched and the
revocation feed is polled, so sync and async frameworks share one implementation.

A process forked after the thread started (gunicorn ``--preload``) has no such thread: owners given to
:func:`forget_in_forked_children` are told so in the child, and start a new one on their next use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import weakref
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

__all__ = ["IOThread", "forget_in_forked_children"]

T = TypeVar("T")


class IOThread:
    """A daemon thread running an event loop, which it owns from start to close."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="keyturn-verifier", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            _finish(self.loop)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        """Stop the loop, cancel what still runs on it, close it; wait up to 5 s for that."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


def _finish(loop: asyncio.AbstractEventLoop) -> None:
    """What ``asyncio.run`` does at its end: cancel the tasks still pending and let them unwind, then close
    the loop. A task dropped pending would be reported ("Task was destroyed but it is pending!") whenever
    it is collected, at interpreter exit as often as not."""
    try:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


class _Owner(Protocol):
    def _forget_thread(self) -> None: ...


_OWNERS: weakref.WeakSet[_Owner] = weakref.WeakSet()
_registered = threading.Lock()
_hooked = False


def forget_in_forked_children(owner: _Owner) -> None:
    """Call ``owner._forget_thread()`` in every child process forked from now on (while ``owner`` lives)."""
    global _hooked  # one fork hook per process, however many owners
    with _registered:
        if not _hooked:
            os.register_at_fork(after_in_child=_after_fork)
            _hooked = True
        _OWNERS.add(owner)


def _after_fork() -> None:
    for owner in list(_OWNERS):
        owner._forget_thread()
