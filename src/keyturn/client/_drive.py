"""The driver of the client's flows: calls to the token service with httpx, sleeps, the refresh lock.

The same flows (``_flow.py``) run on a thread (:meth:`Driver.run`) or on an event loop
(:meth:`Driver.arun`); the two differ only by ``await``. One refresh at a time: a thread lock shared by
every manager on one token store, and, per event loop, an asyncio lock that queues the loop's tasks for it
without blocking the loop. Callbacks queued while the lock was held run after it is released.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from typing import Any, TypeVar, cast

import httpx

from ._session import Session
from ._steps import BUSY, Call, Exclusive, Flow, NoAnswer, Reply, SendRequest, Sleep, Step

__all__ = ["Driver", "lock_of", "no_answer"]

T = TypeVar("T")

_STORE_LOCKS: weakref.WeakKeyDictionary[object, threading.Lock] = weakref.WeakKeyDictionary()
_STORE_LOCKS_GUARD = threading.Lock()


def lock_of(store: object) -> threading.Lock:
    """The one refresh lock of ``store``, shared by every manager on it in this process."""
    with _STORE_LOCKS_GUARD:
        try:
            lock = _STORE_LOCKS.get(store)
        except TypeError:  # a store that cannot be weakly referenced gets a lock of its own
            return threading.Lock()
        if lock is None:
            lock = _STORE_LOCKS[store] = threading.Lock()
        return lock


def no_answer(exc: BaseException) -> NoAnswer:
    """A failed httpx exchange as an answer: a connection never made carried nothing; anything later may
    have been acted on by the server."""
    unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    return NoAnswer(exc, maybe_applied=not unsent)


class Driver:
    """Does the steps of one session's flows; owns the httpx clients it makes (not those it is given)."""

    def __init__(
        self,
        session: Session,
        base_url: str,
        timeout: float,
        http: httpx.Client | None,
        async_http: httpx.AsyncClient | None,
    ) -> None:
        self.session = session
        self.base_url = base_url
        self.timeout = timeout
        self.lock = lock_of(session.store)
        self._http = http
        self._owns_http = False
        self._given_async_http = async_http
        self._async_http: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    # -- on a thread ---------------------------------------------------------------------------------

    def run(self, flow: Flow[T]) -> T:
        """Drive one of the manager's flows (they never send an application request) to its end; the
        callbacks it queued run before this returns or raises."""
        return cast(T, self.advance(flow, None))

    def run_until(self, flow: Flow[None], stop: threading.Event) -> None:
        """Drive ``flow`` until it ends or ``stop`` is set: its sleeps wait on ``stop``."""
        answer: Any = None
        try:
            while True:
                try:
                    step = flow.send(answer)
                except StopIteration:
                    return
                if isinstance(step, Sleep):
                    if stop.wait(step.seconds):
                        return
                    answer = None
                else:
                    answer = self.do(step)
                self.session.fire()
        finally:
            flow.close()

    def advance(self, flow: Flow[Any], answer: Any) -> Any:
        """Send ``answer`` into ``flow`` and do its steps until it ends (its value) or asks for the
        application's request to be sent (the :class:`SendRequest`: the caller's driver sends it)."""
        try:
            return self._until_request(flow, answer, outside=True)
        finally:
            self.session.fire()

    def _until_request(self, flow: Flow[Any], answer: Any, outside: bool = False) -> Any:
        """``outside``: the lock is not held, so the callbacks queued so far run before each call."""
        while True:
            try:
                step = flow.send(answer)
            except StopIteration as stop:
                return stop.value
            if isinstance(step, SendRequest):
                return step
            if outside and isinstance(step, Call):
                self.session.fire()
            answer = self.do(step)

    def do(self, step: Step) -> Any:
        """One step, on this thread: what came of it."""
        if isinstance(step, Exclusive):
            if not self.lock.acquire(blocking=step.wait):
                return BUSY
            try:
                return self._until_request(step.flow, None)
            finally:
                self.lock.release()
                self.session.fire()
        if isinstance(step, Call):
            try:
                return _reply(self._sync_http().post(self.base_url + step.path, **_body(step)))
            except httpx.HTTPError as exc:
                return no_answer(exc)
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        raise TypeError(f"{step!r} is the application's request: its driver sends it")

    # -- on an event loop ----------------------------------------------------------------------------

    async def arun(self, flow: Flow[T]) -> T:
        return cast(T, await self.aadvance(flow, None))

    async def aadvance(self, flow: Flow[Any], answer: Any) -> Any:
        try:
            return await self._auntil_request(flow, answer, outside=True)
        finally:
            self.session.fire()

    async def _auntil_request(self, flow: Flow[Any], answer: Any, outside: bool = False) -> Any:
        while True:
            try:
                step = flow.send(answer)
            except StopIteration as stop:
                return stop.value
            if isinstance(step, SendRequest):
                return step
            if outside and isinstance(step, Call):
                self.session.fire()
            answer = await self.ado(step)

    async def ado(self, step: Step) -> Any:
        if isinstance(step, Exclusive):
            if not step.wait:
                if not self.lock.acquire(blocking=False):
                    return BUSY
                return await self._aholding(step.flow)
            async with self._loop_lock():  # the loop's tasks queue here, not on the thread lock
                while not self.lock.acquire(blocking=False):  # noqa: ASYNC110 - a thread may hold it
                    await asyncio.sleep(0.005)
                return await self._aholding(step.flow)
        if isinstance(step, Call):
            try:
                return _reply(await self._async_client().post(self.base_url + step.path, **_body(step)))
            except httpx.HTTPError as exc:
                return no_answer(exc)
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        raise TypeError(f"{step!r} is the application's request: its driver sends it")

    async def _aholding(self, flow: Flow[Any]) -> Any:
        """``flow`` with the thread lock just taken; released (and the callbacks run) after."""
        try:
            return await self._auntil_request(flow, None)
        finally:
            self.lock.release()
            self.session.fire()

    # -- the httpx clients ---------------------------------------------------------------------------

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._loop_locks.get(loop)
        if lock is None:
            lock = self._loop_locks.setdefault(loop, asyncio.Lock())
        return lock

    def _sync_http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=self.timeout)
            self._owns_http = True
        return self._http

    def _async_client(self) -> httpx.AsyncClient:
        if self._given_async_http is not None:
            return self._given_async_http
        loop = asyncio.get_running_loop()
        client = self._async_http.get(loop)
        if client is None:
            client = self._async_http[loop] = httpx.AsyncClient(timeout=self.timeout)
        return client

    def close(self) -> None:
        if self._http is not None and self._owns_http:
            self._http.close()

    async def aclose(self) -> None:
        client = self._async_http.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
        self.close()


def _body(call: Call) -> dict[str, Any]:
    return {"json": dict(call.body), "headers": dict(call.headers)}


def _reply(response: httpx.Response) -> Reply:
    return Reply(response.status_code, response.headers, response.content)
