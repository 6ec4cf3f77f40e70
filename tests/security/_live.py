"""The token service's real app on uvicorn in a thread of the test process, on a real store.

For Schemathesis, which sends many logins: this service hashes passwords with the smallest argon2 cost
(``keyturn.testing.fast_hasher``), where a ``keyturn serve`` takes half a second a login on this machine.
Everything else is as served: ``create_app`` with its error handlers and body cap, real HTTP on loopback,
SQLite, PostgreSQL or Redis. Sessions the tests need are started on the service's own event loop
(:meth:`LiveService.start_session`), so they do not count against the login rate limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from keyturn.server.app import create_app
from keyturn.server.runtime import Runtime, open_runtime
from keyturn.sessions import TokenPair
from keyturn.testing import fast_hasher, make_settings

from .._secrets import new_password


class LiveService:
    """``create_app`` served by uvicorn on 127.0.0.1, with user ``alice``."""

    def __init__(self, store_url: str, **settings: Any) -> None:
        self.settings = make_settings(store_url=store_url, **settings)
        self.username = "alice"
        self.password = new_password()
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runtime: Runtime | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="keyturn-security-live", daemon=True)

    def start(self) -> LiveService:
        self._thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._failure is not None:
                raise RuntimeError("the service failed to start") from self._failure
            if self._server is not None and self._server.started:
                return self
            time.sleep(0.02)
        raise RuntimeError("the service did not start within 60 s")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(30)
        self._socket.close()

    def start_session(self) -> TokenPair:
        """A new session of alice's, started as the login route would after checking her password."""
        assert self._loop is not None
        assert self._runtime is not None
        start = self._runtime.sessions.start(self.username)
        return asyncio.run_coroutine_threadsafe(start, self._loop).result(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
            self._failure = exc

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        runtime = await open_runtime(self.settings, hasher=fast_hasher())
        try:
            await runtime.users.add(self.username, self.password)
            self._runtime = runtime
            config = uvicorn.Config(
                create_app(runtime=runtime),
                log_config=None,
                log_level="info",
                access_log=True,
                lifespan="on",
                ws="none",
                timeout_graceful_shutdown=2,
            )
            self._server = uvicorn.Server(config)
            await self._server.serve(sockets=[self._socket])
        finally:
            await runtime.close()


@contextlib.contextmanager
def live_service(store_url: str, **settings: Any) -> Iterator[LiveService]:
    service = LiveService(store_url, **settings).start()
    try:
        yield service
    finally:
        service.stop()
