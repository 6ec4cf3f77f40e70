"""The token service's real app on uvicorn in a thread of the test process, on a real store.

For Schemathesis, which sends many logins: this service hashes passwords with the smallest argon2 cost
(``keyturn.testing.fast_hasher``), where a ``keyturn serve`` takes half a second a login on this machine.
Everything else is as served: ``create_app`` with its error handlers and body cap, real HTTP on loopback,
SQLite, PostgreSQL or Redis. Sessions the tests need are started on the service's own event loop
(:meth:`LiveService.start_session`), so they do not count against the login rate limits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from starlette.types import ASGIApp

from keyturn.server.app import create_app
from keyturn.server.runtime import Runtime
from keyturn.sessions import TokenPair
from keyturn.testing import make_settings

from .._threaded import ThreadedService


class LiveService(ThreadedService):
    """``create_app`` served by uvicorn on 127.0.0.1, with user ``alice``; uvicorn logs every request."""

    thread_name = "keyturn-security-live"
    log_level = "info"
    access_log = True
    patience = 60.0

    def __init__(self, store_url: str, **settings: Any) -> None:
        super().__init__(make_settings(store_url=store_url, **settings))

    def app(self, runtime: Runtime) -> ASGIApp:
        return create_app(runtime=runtime)

    def start_session(self) -> TokenPair:
        """A new session of alice's, started as the login route would after checking her password."""
        assert self.runtime is not None
        return self.on_loop(self.runtime.sessions.start(self.username))


@contextlib.contextmanager
def live_service(store_url: str, **settings: Any) -> Iterator[LiveService]:
    service = LiveService(store_url, **settings).start()
    try:
        yield service
    finally:
        service.stop()
