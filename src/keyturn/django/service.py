"""The token service inside one Django process: opened on first use, on the process's loop thread.

One :class:`ProjectService` per process (:func:`service`), built from ``settings.KEYTURN``. Its runtime
(store, keys, sessions, rate limits) is opened on the :class:`~._bridge.Bridge`'s loop at the first call,
with the periodic chores (key reload, pruning) running beside it; a forked worker opens its own. The core
asks "may this subject still hold a session?" on every refresh from that loop: the answer comes from the
project's user model: the routes ask it on the request's own thread, and a refresh made some other way
asks it here, on a small pool of threads of its own (the ORM is sync).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from typing import Any, TypeVar

from django.db import DatabaseError, connections

from ..errors import StoreUnavailable
from ..middleware.verifier import AccessTokenVerifier
from ..server.background import chores
from ..server.runtime import Runtime, open_runtime
from ..typing import Store
from . import conf
from ._bridge import Bridge
from ._flow import Core
from .users import may_hold_session

__all__ = ["ProjectService", "service"]

T = TypeVar("T")

ORM_THREADS = 2
"""Threads that read users for the subject check (each holds its own database connection)."""


class ProjectService:
    """Keyturn's runtime for this process, and the ways to reach it from sync and async code."""

    def __init__(self, config: conf.DjangoKeyturn) -> None:
        self.config = config
        self.bridge = Bridge()
        self._runtime: Runtime | None = None
        self._opening: asyncio.Lock | None = None
        self._exits: AsyncExitStack | None = None
        self._orm: ThreadPoolExecutor | None = None
        self._verifier: AccessTokenVerifier | None = None
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    # -- reaching the core ---------------------------------------------------------------------

    def call(self, step: Core) -> Any:
        """Run a core step from sync code (a WSGI request thread) and wait for it."""
        return self.bridge.run(self._on_loop(step.call))

    async def acall(self, step: Core) -> Any:
        """Run a core step from async code; the caller's loop goes on meanwhile."""
        return await self.bridge.arun(self._on_loop(step.call))

    def run(self, call: Callable[[Runtime], Awaitable[T]]) -> T:
        result: T = self.call(Core(call))
        return result

    async def arun(self, call: Callable[[Runtime], Awaitable[T]]) -> T:
        result: T = await self.acall(Core(call))
        return result

    async def _on_loop(self, call: Callable[[Runtime], Awaitable[Any]]) -> Any:
        return await call(await self.runtime())

    async def runtime(self) -> Runtime:
        """The opened runtime (on the loop thread): opened once per process, chores started with it."""
        if self._runtime is not None:
            return self._runtime
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._runtime is None:
                runtime = await open_runtime(self.config.settings, subject_check=self._subject_check)
                exits = AsyncExitStack()
                await exits.enter_async_context(chores(runtime))
                exits.push_async_callback(runtime.close)
                self._runtime, self._exits = runtime, exits
        return self._runtime

    def close(self) -> None:
        """Stop the chores and close the store and the verifier (tests; a process's end does as much)."""
        exits, self._exits, self._runtime = self._exits, None, None
        if exits is not None:
            self.bridge.run(exits.aclose())
        verifier, self._verifier = self._verifier, None
        if verifier is not None:
            verifier.close()

    # -- the subject check and the access-token verifier -----------------------------------------

    async def _subject_check(self, sub: str) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._orm_threads(), _checked, may_hold_session, sub)

    def _orm_threads(self) -> ThreadPoolExecutor:
        if self._orm is None:
            self._orm = ThreadPoolExecutor(ORM_THREADS, thread_name_prefix="keyturn-django-users")
        return self._orm

    def verifier(self) -> AccessTokenVerifier:
        """Checks access tokens offline for the project's API (``KeyturnAuthentication``): keys and
        revocations read from the same store, revocations within ``REVOCATION_POLL_INTERVAL``."""
        with self._lock:
            if self._verifier is None:
                url = self.config.store_url
                # Opening the runtime first puts the service's keys in the store (this process's, or the
                # ones another process made first), so the verifier's first read lists the keys that sign
                # tokens: a process whose first request is an API call must not take them for unknown.
                # A memory store is one process's (tests): the verifier reads the runtime's own.
                own = self.run(_own_store)
                store: Store | str = own if url.startswith("memory://") else url
                self._verifier = AccessTokenVerifier.for_store(store, settings=self.config.settings)
            return self._verifier

    def _forget(self) -> None:
        # In a forked child: the parent's loop, store connections and threads did not come along.
        self._runtime = self._opening = self._exits = self._orm = None
        self._lock = threading.Lock()


async def _own_store(runtime: Runtime) -> Store:
    return runtime.store


def _checked(read: Callable[[str], T], subject: str) -> T:
    """``read(subject)`` on an ORM thread; a database failure is a retryable ``server_error``."""
    try:
        return read(subject)
    except DatabaseError as exc:
        connections.close_all()  # this thread's connections: the next call opens fresh ones
        raise StoreUnavailable("The project's database is unavailable.") from exc


_service: ProjectService | None = None
_service_lock = threading.Lock()


def service() -> ProjectService:
    """The process's service, built from ``settings.KEYTURN`` on first use."""
    global _service  # one per process, as Django has one settings module
    if _service is None:
        with _service_lock:
            if _service is None:
                _service = ProjectService(conf.load())
    return _service
