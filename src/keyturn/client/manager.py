"""``TokenManager``: holds the pair, the measured clock offset and the refresh schedule.

One manager per session, shared by any number of threads and asyncio tasks:

- the access token is refreshed ahead of time, when its remaining lifetime in server time falls under
  ``min(refresh_margin, lifetime / 3)`` (with a little jitter), checked before every request and,
  optionally, by a background thread or task;
- one refresh at a time: a thread lock shared by everyone and, per event loop, an asyncio lock; whoever
  takes them reads the pair again and skips the refresh if someone else did it;
- network errors, timeouts, 5xx, 429 and anything else unexpected are temporary: retried with
  exponential backoff and full jitter (``Retry-After`` wins) while a still-valid access token keeps being
  used, the state is ``degraded`` meanwhile; a lost answer is retried with the same refresh token (the
  service's grace period gives the same successor);
- only the definitive codes of the endpoint shape end the session: the tokens are cleared and
  ``on_session_ended(reason)`` is called exactly once.

What to do is decided by the flows of ``_flow.py``, without I/O; this class holds the session and runs
those flows with the driver of ``_drive.py``, on a thread or on an event loop. Callbacks never run while
the lock is held.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from typing import Any

import httpx

from ..clock import SystemClock
from ..errors import LoginFailed, RefreshUnavailable, SessionEnded
from ..typing import Clock
from . import _flow
from ._drive import Driver
from ._endpoints import KEYTURN, Endpoints
from ._session import Session, State, Timing
from ._tokens import FileTokenStore, MemoryTokenStore, Tokens, TokenStore
from .dpop import DpopKey, Prover

__all__ = ["LoginFailed", "RefreshUnavailable", "SessionEnded", "State", "TokenManager"]

BACKGROUND_MAX_SLEEP = 60.0
"""The background refresher wakes at least this often: timers drift while a machine sleeps."""


class TokenManager:
    def __init__(
        self,
        base_url: str,
        *,
        endpoints: Endpoints = KEYTURN,
        store: TokenStore | None = None,
        refresh_margin: float = 300.0,
        jitter: float = 0.1,
        max_wait: float = 60.0,
        timeout: float = 10.0,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        on_session_ended: Callable[[str], object] | None = None,
        on_refreshed: Callable[[Tokens], object] | None = None,
        on_state: Callable[[State], object] | None = None,
        http: httpx.Client | None = None,
        async_http: httpx.AsyncClient | None = None,
        dpop: DpopKey | bool | str | os.PathLike[str] = False,
    ) -> None:
        """``dpop``: sign a DPoP proof (RFC 9449) for each login, refresh and logout, so that the session is
        bound to the key: ``True``, a key in a 0600 file beside a ``FileTokenStore``'s file (its name and
        ``.dpop.pem``), else in memory; a path, a key in that file (made if missing); or a ``DpopKey``."""
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.on_session_ended = on_session_ended
        self.on_refreshed = on_refreshed
        self.on_state = on_state
        """The callbacks may be set at any time; they run outside the refresh lock."""
        self.endpoints = endpoints
        self.store: TokenStore = store or MemoryTokenStore()
        self.clock: Clock = clock or SystemClock()
        self.timing = Timing(refresh_margin, jitter, max_wait, rng or random.Random())  # noqa: S311 - jitter
        """The settings are read when the manager is made: set them there."""
        self._session = Session(endpoints, self.store, self.clock, self.timing, self)
        self._driver = Driver(self._session, self.base_url, timeout, http, async_http)
        key = _dpop_key(dpop, self.store)
        if key is not None:
            self._session.dpop = Prover(key, self.base_url, self._proof_now)

    # -- what the application reads -------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._session.state

    @property
    def tokens(self) -> Tokens | None:
        return self._session.tokens

    @property
    def refreshes(self) -> int:
        """Refresh calls answered with a new pair (for the application's own metrics)."""
        return self._session.refreshes

    @property
    def clock_offset(self) -> float:
        """``server_time - local_time`` as last measured (seconds)."""
        tokens = self._session.tokens
        return tokens.clock_offset if tokens else 0.0

    def server_now(self) -> float:
        return self.clock.now() + self.clock_offset

    def _proof_now(self) -> float:
        """The service's time for a DPoP proof's ``iat``: by the least offset the last call allows, so
        never ahead of the service's clock. (The midpoint runs ahead when a request took longer to get
        there than its answer took to come back: a queue, a busy machine, a ``use_dpop_nonce`` round trip.)"""
        tokens = self._session.tokens
        if tokens is None:
            return self.clock.now()
        least = tokens.clock_offset if tokens.min_clock_offset is None else tokens.min_clock_offset
        return self.clock.now() + least

    # -- logging in and out ---------------------------------------------------------------------
    # Each method has an ``a``-prefixed twin for event loops: the same flow, driven with ``await``.

    def login(self, username: str, password: str) -> Tokens:
        """Log in; ``LoginFailed`` if the service refuses, httpx's error if it cannot be reached."""
        return self._driver.run(_flow.login(self._session, username, password))

    async def alogin(self, username: str, password: str) -> Tokens:
        return await self._driver.arun(_flow.login(self._session, username, password))

    def set_tokens(self, body: object) -> Tokens:
        """Start from a token response the application obtained itself (its own login, say)."""
        now = self.clock.now()
        return self._driver.run(_flow.start(self._session, self.endpoints.tokens(body, None, now, now)))

    def logout(self, *, everywhere: bool = False) -> None:
        """End the session on the server (best effort) and here; ``on_session_ended("logout")``."""
        self._driver.run(_flow.logout(self._session, everywhere))

    async def alogout(self, *, everywhere: bool = False) -> None:
        await self._driver.arun(_flow.logout(self._session, everywhere))

    # -- the access token -----------------------------------------------------------------------

    def access_token(self) -> str:
        """A usable access token, refreshed first if due (waiting only if the current one is unusable)."""
        return self._session.ready(None) or self._driver.run(_flow.access(self._session))

    async def aaccess_token(self) -> str:
        token = self._session.ready(None)
        return token if token is not None else await self._driver.arun(_flow.access(self._session))

    def replace_rejected(self, rejected: str) -> str:
        """A new access token in place of ``rejected`` (a resource server answered ``token_expired``)."""
        return self._driver.run(_flow.obtain(self._session, rejected))

    async def areplace_rejected(self, rejected: str) -> str:
        return await self._driver.arun(_flow.obtain(self._session, rejected))

    def end(self, reason: str) -> None:
        """End the session for ``reason`` (a resource server's definitive answer, say), and tell the server
        (one logout, best effort, after ``on_session_ended`` has run)."""
        self._driver.run(_flow.give_up(self._session, reason))

    # -- background refresh ---------------------------------------------------------------------

    def start_background(self) -> Callable[[], None]:
        """Refresh ahead of time on a daemon thread as well; returns the function that stops it."""
        stop = threading.Event()
        thread = threading.Thread(target=self._background, args=(stop,), name="keyturn-refresh", daemon=True)
        thread.start()

        def stopper() -> None:
            stop.set()
            thread.join(timeout=5)

        return stopper

    async def run_background(self) -> None:
        """Refresh ahead of time until the session ends; run it as a task and cancel it to stop."""
        await self._driver.arun(_flow.background(self._session, BACKGROUND_MAX_SLEEP))

    def _background(self, stop: threading.Event) -> None:
        self._driver.run_until(_flow.background(self._session, BACKGROUND_MAX_SLEEP), stop)

    # -- closing --------------------------------------------------------------------------------

    def close(self) -> None:
        self._driver.close()

    async def aclose(self) -> None:
        await self._driver.aclose()

    def __repr__(self) -> str:
        return f"TokenManager({self.base_url!r}, state={self.state!r})"

    def _debug(self) -> dict[str, Any]:
        session = self._session
        return {"failures": session.failures, "retry_at": session.retry_at, "refresh_at": session.refresh_at}


def _dpop_key(dpop: DpopKey | bool | str | os.PathLike[str], store: TokenStore) -> DpopKey | None:
    """The DPoP key the ``dpop`` argument names (see ``TokenManager``)."""
    if isinstance(dpop, DpopKey):
        return dpop
    if dpop is False:
        return None
    if dpop is True:
        if isinstance(store, FileTokenStore):
            return DpopKey.from_file(store.path.with_name(store.path.name + ".dpop.pem"))
        return DpopKey.generate()
    return DpopKey.from_file(dpop)
