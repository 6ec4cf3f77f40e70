"""ASGI apps served by uvicorn on 127.0.0.1 in a thread of the test process.

:func:`serving`: any app, built by the test, for the duration of a ``with``.

:class:`ThreadedService`: the token service's real app: real HTTP on loopback, the real ``create_app`` on
a runtime of its own (a fast password hasher, user ``alice``), and the service's own event loop, on which
tests run what needs its store (:meth:`ThreadedService.on_loop`). A subclass says what it serves
(:meth:`ThreadedService.app`) and how uvicorn logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, Literal, Self, TypeVar

import uvicorn
from starlette.types import ASGIApp

from keyturn.config import Settings
from keyturn.server.runtime import Runtime, open_runtime
from keyturn.testing import fast_hasher
from keyturn.typing import Clock

from ._secrets import new_password

T = TypeVar("T")


@contextlib.contextmanager
def serving(app: ASGIApp, *, lifespan: Literal["on", "off"] = "on", patience: float = 30.0) -> Iterator[str]:
    """``app`` served on a free port of 127.0.0.1 (its URL yielded) from when uvicorn has started."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan=lifespan))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + patience
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join(patience)


class ThreadedService:
    """``app(runtime)`` served on 127.0.0.1 from ``start`` to ``stop``, with user ``alice``."""

    thread_name = "keyturn-live"
    log_level = "warning"
    access_log = False
    patience = 30.0
    """Seconds to wait for the server to start, and then to stop."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.username = "alice"
        self.password = new_password()
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.runtime: Runtime | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)

    def app(self, runtime: Runtime) -> ASGIApp:
        """What uvicorn serves (built on the service's loop, once ``runtime`` is open)."""
        raise NotImplementedError

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + self.patience
        while time.monotonic() < deadline:
            if self._failure is not None:
                raise RuntimeError("the live service failed to start") from self._failure
            if self._server is not None and self._server.started:
                return self
            time.sleep(0.02)
        raise RuntimeError(f"the live service did not start within {self.patience:g} s")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(self.patience)
        self._socket.close()

    def on_loop(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the service's own event loop (its store belongs there) and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
            self._failure = exc

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        runtime = await open_runtime(self.settings, clock=self.clock, hasher=fast_hasher())
        try:
            await runtime.users.add(self.username, self.password)
            app = self.app(runtime)
            self.runtime = runtime
            config = uvicorn.Config(
                app,
                log_config=None,
                log_level=self.log_level,
                access_log=self.access_log,
                lifespan="on",
                ws="none",
                timeout_graceful_shutdown=2,
            )
            self._server = uvicorn.Server(config)
            await self._server.serve(sockets=[self._socket])
        finally:
            await runtime.close()
