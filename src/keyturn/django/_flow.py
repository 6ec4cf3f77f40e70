"""Each endpoint written once, as a generator of steps, and run by a sync shell or an async one.

An endpoint alternates between Keyturn's async core (on the process's loop thread, :mod:`._bridge`) and
Django's sync ORM (``authenticate()``, reading a user). It yields each step and gets its result back, the
way httpx writes ``Auth.auth_flow``: under WSGI :func:`run_sync` runs ORM steps on the request's thread
and blocks on core steps; under ASGI :func:`run_async` awaits core steps and runs ORM steps on Django's
thread for sync code (``sync_to_async``), so the event loop never waits.

:class:`DualView` is the view Django sees: asked on an event-loop thread (the ASGI handler's) whether it is
a coroutine function, it says yes and returns a coroutine; asked anywhere else (a WSGI worker, Django's
test client), it is a plain sync view. So no loop is started per request under WSGI, and no thread is
taken per request under ASGI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeAlias

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse

from ..server.runtime import Runtime
from ._bridge import on_event_loop

__all__ = ["Core", "DualView", "Flow", "Orm", "Step", "run_async", "run_sync"]


@dataclass(frozen=True, slots=True)
class Core:
    """A step on Keyturn's core: ``call(runtime)`` is awaited on the process's loop thread."""

    call: Callable[[Runtime], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Orm:
    """A step of sync Django code (the ORM, ``authenticate()``, signals)."""

    call: Callable[[], Any]


Step: TypeAlias = Core | Orm
Flow: TypeAlias = Generator[Step, Any, HttpResponse]
CoreRunner: TypeAlias = Callable[[Core], Any]


def run_sync(flow: Flow, core: CoreRunner) -> HttpResponse:
    """Drive ``flow`` on this thread; ``core`` runs a core step and waits for it."""
    try:
        step = next(flow)
        while True:
            try:
                result = step.call() if isinstance(step, Orm) else core(step)
            except Exception as exc:  # noqa: BLE001  # handed to the flow, to catch or let through
                step = flow.throw(exc)
            else:
                step = flow.send(result)
    except StopIteration as done:
        response: HttpResponse = done.value
        return response


async def run_async(flow: Flow, core: Callable[[Core], Awaitable[Any]]) -> HttpResponse:
    """Drive ``flow`` on an event loop; ORM steps go to Django's thread for sync code."""
    try:
        step = next(flow)
        while True:
            try:
                if isinstance(step, Orm):
                    result = await sync_to_async(step.call, thread_sensitive=True)()
                else:
                    result = await core(step)
            except Exception as exc:  # noqa: BLE001  # handed to the flow, as run_sync does
                step = flow.throw(exc)
            else:
                step = flow.send(result)
    except StopIteration as done:
        response: HttpResponse = done.value
        return response


def _probe() -> None: ...


markcoroutinefunction(_probe)
_MARKS = {
    name: getattr(_probe, name)
    for name in ("_is_coroutine", "_is_coroutine_marker")
    if getattr(_probe, name, None) is not None
}
"""The attribute(s) by which ``asgiref.sync.iscoroutinefunction`` recognises a coroutine function."""


class DualView:
    """A Django view that is async on an event loop (ASGI) and sync elsewhere (WSGI)."""

    csrf_exempt = True  # Keyturn's cookie mode has its own CSRF defence: the X-Keyturn-CSRF header

    def __init__(
        self,
        handler: Callable[..., HttpResponse | Awaitable[HttpResponse]],
        ahandler: Callable[..., Awaitable[HttpResponse]],
        name: str,
    ) -> None:
        self._handler = handler
        self._ahandler = ahandler
        self.__name__ = self.__qualname__ = name

    def __getattr__(self, name: str) -> Any:
        if name in _MARKS and on_event_loop():
            return _MARKS[name]
        raise AttributeError(name)

    @cached_property
    def _non_atomic_requests(self) -> frozenset[str]:
        # ATOMIC_REQUESTS would wrap the view in a transaction Keyturn's store does not take part in.
        # Django reads this on every request; its database aliases are fixed once it has read them.
        from django.db import connections

        return frozenset(connections)

    def __call__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if on_event_loop():
            return self._ahandler(request, *args, **kwargs)
        return self._handler(request, *args, **kwargs)
