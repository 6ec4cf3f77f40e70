"""``TokenManager``: holds the pair, the measured clock offset and the refresh schedule (DESIGN section 6).

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

Callbacks never run while the lock is held.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Literal

import httpx

from ..clock import SystemClock
from ..typing import Clock
from ._endpoints import KEYTURN, Endpoints, backoff, retry_after
from ._tokens import MemoryTokenStore, Tokens, TokenStore

__all__ = ["LoginFailed", "RefreshUnavailable", "SessionEnded", "State", "TokenManager"]

logger = logging.getLogger("keyturn.client")

State = Literal["signed_out", "active", "degraded", "ended"]

USABLE_MARGIN = 1.0
"""An access token this close to its expiry (server time, seconds) is no longer worth sending while a
refresh is due: callers wait for the refresh instead (with a tiny ``refresh_margin`` it is never due
that early, and such a token is sent; a 401 ``token_expired`` is then retried once)."""
LOST_ANSWER_WINDOW = 25.0
"""After a refresh whose answer may have been lost (it may have rotated the pair on the server), retries
come at most ``LOST_ANSWER_RETRY`` seconds apart for this long: they must land inside the service's grace
period (30 s by default), where the same refresh token still gets the same successor; later it would be
taken for reuse and end the session."""
LOST_ANSWER_RETRY = 2.0
BACKGROUND_MAX_SLEEP = 60.0
"""The background refresher wakes at least this often: timers drift while a machine sleeps."""


class SessionEnded(Exception):
    """The session is over; ``reason``: a definitive code, ``logout``, or ``signed_out`` (there was none)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the session has ended: {reason}")
        self.reason = reason


class RefreshUnavailable(Exception):
    """The access token has expired and the refresh kept failing for a temporary reason for ``max_wait``.

    The session is not over: the next call tries again.
    """


class LoginFailed(Exception):
    def __init__(self, status: int, code: str | None) -> None:
        super().__init__(f"login failed: HTTP {status} {code or ''}".strip())
        self.status = status
        self.code = code


class _Temporary(Exception):
    def __init__(self, why: str, retry_after: float | None = None, *, maybe_applied: bool = False) -> None:
        super().__init__(why)
        self.retry_after = retry_after
        self.maybe_applied = maybe_applied
        """The request may have reached the server (and rotated the pair) though no answer came."""


def _transport_failure(exc: httpx.HTTPError) -> _Temporary:
    # A connection never made carried nothing; anything later may have been applied by the server.
    unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    return _Temporary(type(exc).__name__, maybe_applied=not unsent)


class _Definitive(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_STORE_LOCKS: weakref.WeakKeyDictionary[object, threading.Lock] = weakref.WeakKeyDictionary()
_STORE_LOCKS_GUARD = threading.Lock()


def _lock_of(store: object) -> threading.Lock:
    """The one refresh lock of ``store``, shared by every manager on it in this process."""
    with _STORE_LOCKS_GUARD:
        try:
            lock = _STORE_LOCKS.get(store)
        except TypeError:  # a store that cannot be weakly referenced gets a lock of its own
            return threading.Lock()
        if lock is None:
            lock = _STORE_LOCKS[store] = threading.Lock()
        return lock


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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.endpoints = endpoints
        self.store = store or MemoryTokenStore()
        self.refresh_margin = refresh_margin
        self.jitter = jitter
        self.max_wait = max_wait
        self.timeout = timeout
        self.clock = clock or SystemClock()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self.on_session_ended = on_session_ended
        self.on_refreshed = on_refreshed
        self.on_state = on_state
        self._http = http
        self._async_http: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        if async_http is not None:
            self._given_async_http = async_http
        self._lock = _lock_of(self.store)  # one refresh at a time per store, for threads and tasks alike
        self._loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._callbacks_lock = threading.Lock()
        self._callbacks: list[Callable[[], object]] = []
        self._tokens = self.store.load()
        self._refresh_at = self._schedule(self._tokens)
        self._failures = 0
        self._retry_at = 0.0  # monotonic time of the next allowed attempt after a temporary failure
        self._lost_since: float | None = None  # when a refresh's answer was first lost, if unresolved
        self._ended: str | None = None
        self._state: State = "active" if self._tokens else "signed_out"
        self.refreshes = 0
        """Refresh calls answered with a new pair (for the application's own metrics)."""

    # -- what the application reads -------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def tokens(self) -> Tokens | None:
        return self._tokens

    @property
    def clock_offset(self) -> float:
        """``server_time - local_time`` as last measured (seconds)."""
        return self._tokens.clock_offset if self._tokens else 0.0

    def server_now(self) -> float:
        return self.clock.now() + self.clock_offset

    # -- logging in and out ---------------------------------------------------------------------

    def login(self, username: str, password: str) -> Tokens:
        body = {self.endpoints.username_field: username, self.endpoints.password_field: password}
        sent = self.clock.now()
        response = self._sync_http().post(self.endpoints.login, json=body)
        return self._logged_in(response, sent)

    async def alogin(self, username: str, password: str) -> Tokens:
        body = {self.endpoints.username_field: username, self.endpoints.password_field: password}
        sent = self.clock.now()
        response = await self._async_client().post(self.endpoints.login, json=body)
        return self._logged_in(response, sent)

    def set_tokens(self, body: object) -> Tokens:
        """Start from a token response the application obtained itself (its own login, say)."""
        now = self.clock.now()
        tokens = self.endpoints.tokens(body, None, now, now)
        self._begin(tokens)
        return tokens

    def logout(self, *, everywhere: bool = False) -> None:
        """End the session on the server (best effort) and here; ``on_session_ended("logout")``."""
        request = self._logout_request(everywhere)
        if request is not None:
            try:
                self._sync_http().send(request)
            except httpx.HTTPError as exc:
                logger.warning("logout: the server could not be reached (%s); ended here", type(exc).__name__)
        self._end("logout")
        self._fire()

    async def alogout(self, *, everywhere: bool = False) -> None:
        request = self._logout_request(everywhere)
        if request is not None:
            try:
                await self._async_client().send(request)
            except httpx.HTTPError as exc:
                logger.warning("logout: the server could not be reached (%s); ended here", type(exc).__name__)
        self._end("logout")
        self._fire()

    # -- the access token -----------------------------------------------------------------------

    def access_token(self) -> str:
        """A usable access token, refreshed first if due (waiting only if the current one is unusable)."""
        try:
            tokens = self._require()
        except SessionEnded:
            self._fire()
            raise
        if not self._is_due(tokens):
            return tokens.access_token
        if self._is_usable(tokens):
            if time.monotonic() >= self._retry_at and self._lock.acquire(blocking=False):
                try:
                    kind, value = self._next_step(None)
                    if kind == "refresh":
                        assert isinstance(value, Tokens)
                        self._refresh_once_sync(value)
                finally:
                    self._lock.release()
                    self._fire()
            current = self._require()
            if self._is_usable(current):
                return current.access_token
        return self._obtain_sync(None)

    async def aaccess_token(self) -> str:
        """:meth:`access_token` for event loops."""
        try:
            tokens = self._require()
        except SessionEnded:
            self._fire()
            raise
        if not self._is_due(tokens):
            return tokens.access_token
        if self._is_usable(tokens):
            if time.monotonic() >= self._retry_at and self._lock.acquire(blocking=False):
                try:
                    kind, value = self._next_step(None)
                    if kind == "refresh":
                        assert isinstance(value, Tokens)
                        await self._refresh_once_async(value)
                finally:
                    self._lock.release()
                    self._fire()
            current = self._require()
            if self._is_usable(current):
                return current.access_token
        return await self._obtain_async(None)

    def replace_rejected(self, rejected: str) -> str:
        """A new access token in place of ``rejected`` (a resource server answered ``token_expired``)."""
        return self._obtain_sync(rejected)

    async def areplace_rejected(self, rejected: str) -> str:
        return await self._obtain_async(rejected)

    def end(self, reason: str) -> None:
        """End the session for ``reason`` (a resource server's definitive answer, say)."""
        self._end(reason)
        self._fire()

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
        while self._ended is None:
            await asyncio.sleep(self._background_delay())
            if self._tokens is not None and self._is_due(self._tokens):
                try:
                    await self.aaccess_token()
                except RefreshUnavailable:
                    continue
                except SessionEnded:
                    return

    def _background(self, stop: threading.Event) -> None:
        while self._ended is None and not stop.wait(self._background_delay()):
            if self._tokens is not None and self._is_due(self._tokens):
                try:
                    self.access_token()
                except RefreshUnavailable:
                    continue
                except SessionEnded:
                    return

    def _background_delay(self) -> float:
        tokens = self._tokens
        if tokens is None:
            return 1.0
        until_due = self._refresh_at - (self.clock.now() + tokens.clock_offset)
        until_retry = self._retry_at - time.monotonic()
        return min(max(until_due, until_retry, 0.05), BACKGROUND_MAX_SLEEP)

    # -- closing --------------------------------------------------------------------------------

    def close(self) -> None:
        if self._http is not None and getattr(self, "_owns_http", False):
            self._http.close()

    async def aclose(self) -> None:
        client = self._async_http.pop(asyncio.get_running_loop(), None)
        if client is not None and client is not getattr(self, "_given_async_http", None):
            await client.aclose()
        self.close()

    # -- the decisions (no I/O) -----------------------------------------------------------------

    def _schedule(self, tokens: Tokens | None) -> float:
        """When, in server time, ``tokens`` are due for a refresh."""
        if tokens is None:
            return float("inf")
        margin = min(self.refresh_margin, tokens.lifetime / 3)
        return tokens.access_expires_at - margin * (1 + self._rng.uniform(0, self.jitter))

    def _is_due(self, tokens: Tokens) -> bool:
        return self.clock.now() + tokens.clock_offset >= self._refresh_at or tokens is not self._tokens

    def _is_usable(self, tokens: Tokens) -> bool:
        return self.clock.now() + tokens.clock_offset < tokens.access_expires_at - USABLE_MARGIN

    def _require(self) -> Tokens:
        tokens = self._tokens
        if self._ended is not None:
            raise SessionEnded(self._ended)
        if tokens is None:
            raise SessionEnded("signed_out")
        expires = tokens.refresh_expires_at
        if expires is not None and self.clock.now() + tokens.clock_offset > expires:
            self._end("refresh_token_expired")  # its callback runs when the caller fires them
            raise SessionEnded("refresh_token_expired")
        return tokens

    def _next_step(self, rejected: str | None) -> tuple[Literal["use", "refresh", "wait"], Tokens | float]:
        """With the lock held: use a pair, refresh now, or wait so many seconds for the next attempt.

        The store is read again first: another manager on it (another run of the program, say) may
        have refreshed, and its refresh token is the one that counts now.
        """
        self._adopt_stored()
        current = self._require()
        good = self._is_usable(current) and current.access_token != rejected
        if good and not self._is_due(current):
            return "use", current
        if time.monotonic() >= self._retry_at:
            return "refresh", current
        if good:
            return "use", current  # due, but backing off: a valid token keeps being used
        return "wait", self._retry_at - time.monotonic()

    def _judge(self, response: httpx.Response, tokens: Tokens, sent: float) -> Tokens:
        received = self.clock.now()
        if 200 <= response.status_code < 300:
            try:
                return self.endpoints.tokens(response.json(), tokens, sent, received)
            except ValueError as exc:
                raise _Temporary(f"the refresh answer is unreadable ({exc})") from exc
        try:
            code = self.endpoints.error_code(response.json())
        except ValueError:
            code = None
        if response.status_code in (400, 401, 403) and code in self.endpoints.definitive:
            raise _Definitive(code or "")
        raise _Temporary(f"HTTP {response.status_code} {code or ''}", retry_after(response.headers))

    def _refresh_request(self, tokens: Tokens) -> dict[str, str]:
        return {self.endpoints.refresh_field: tokens.refresh_token}

    def _refreshed(self, old: Tokens, new: Tokens) -> None:
        extended = new.access_expires_at > old.access_expires_at
        failures = self._failures
        self._install(new)
        self.refreshes += 1
        if not extended:  # a refresh that did not move the expiry must not be repeated at once
            self._failures = failures
            self._failed(_Temporary("the refresh did not extend the access token"))

    def _adopt_stored(self) -> None:
        if self._ended is not None:
            return
        stored = self.store.load()
        current = self._tokens
        if stored is not None and (current is None or stored.refresh_token != current.refresh_token):
            self._tokens = stored
            self._refresh_at = self._schedule(stored)

    def _install(self, tokens: Tokens) -> None:
        self.store.save(tokens)
        self._tokens = tokens
        self._refresh_at = self._schedule(tokens)
        self._failures = 0
        self._retry_at = 0.0
        self._lost_since = None
        self._set_state("active")
        if self.on_refreshed is not None:
            hook = self.on_refreshed
            self._queue(lambda: hook(tokens))

    def _failed(self, failure: _Temporary) -> None:
        self._failures += 1
        now = time.monotonic()
        if failure.maybe_applied and self._lost_since is None:
            self._lost_since = now
        wait = backoff(self._failures, self._rng, failure.retry_after)
        if self._lost_since is not None and now - self._lost_since < LOST_ANSWER_WINDOW:
            wait = min(wait, LOST_ANSWER_RETRY)  # stay inside the grace period (see LOST_ANSWER_WINDOW)
        self._retry_at = now + wait
        logger.info("refresh failed (%s); next attempt in %.1fs", failure, wait)
        self._set_state("degraded")

    def _end(self, reason: str) -> None:
        with self._callbacks_lock:
            if self._ended is not None:
                return
            self._ended = reason
        self._tokens = None
        self.store.clear()
        self._set_state("ended")
        if self.on_session_ended is not None:
            hook = self.on_session_ended
            self._queue(lambda: hook(reason))

    def _begin(self, tokens: Tokens) -> None:
        with self._lock:
            with self._callbacks_lock:
                self._ended = None
            self._install(tokens)
        self._fire()

    def _set_state(self, state: State) -> None:
        if state != self._state:
            self._state = state
            if self.on_state is not None:
                hook = self.on_state
                self._queue(lambda: hook(state))

    def _queue(self, callback: Callable[[], object]) -> None:
        with self._callbacks_lock:
            self._callbacks.append(callback)

    def _fire(self) -> None:
        """Run the callbacks queued while the lock was held, outside it."""
        if not self._callbacks:
            return
        with self._callbacks_lock:
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # an application's callback must not break the session
                logger.exception("a TokenManager callback failed")

    # -- I/O ------------------------------------------------------------------------------------

    def _logged_in(self, response: httpx.Response, sent: float) -> Tokens:
        if response.status_code != 200:
            try:
                code = self.endpoints.error_code(response.json())
            except ValueError:
                code = None
            raise LoginFailed(response.status_code, code)
        tokens = self.endpoints.tokens(response.json(), None, sent, self.clock.now())
        self._begin(tokens)
        return tokens

    def _logout_request(self, everywhere: bool) -> httpx.Request | None:
        tokens = self._tokens
        if tokens is None or self.endpoints.logout is None:
            return None
        path = self.endpoints.logout + ("-all" if everywhere else "")
        # The service names the session by the access token if one is sent; an expired one would be
        # refused, so then the refresh token alone names it.
        usable = self._is_usable(tokens)
        return httpx.Request(
            "POST",
            self.base_url + path,
            headers={"Authorization": f"Bearer {tokens.access_token}"} if usable else {},
            json={self.endpoints.refresh_field: tokens.refresh_token},
        )

    def _refresh_once_sync(self, tokens: Tokens) -> None:
        """One refresh attempt, with the lock held."""
        sent = self.clock.now()
        try:
            response = self._sync_http().post(self.endpoints.refresh, json=self._refresh_request(tokens))
            new = self._judge(response, tokens, sent)
        except httpx.HTTPError as exc:
            self._failed(_transport_failure(exc))
        except _Temporary as failure:
            self._failed(failure)
        except _Definitive as definitive:
            self._end(definitive.reason)
        else:
            self._refreshed(tokens, new)

    async def _refresh_once_async(self, tokens: Tokens) -> None:
        sent = self.clock.now()
        try:
            client = self._async_client()
            response = await client.post(self.endpoints.refresh, json=self._refresh_request(tokens))
            new = self._judge(response, tokens, sent)
        except httpx.HTTPError as exc:
            self._failed(_transport_failure(exc))
        except _Temporary as failure:
            self._failed(failure)
        except _Definitive as definitive:
            self._end(definitive.reason)
        else:
            self._refreshed(tokens, new)

    def _obtain_sync(self, rejected: str | None) -> str:
        deadline = time.monotonic() + self.max_wait
        while True:
            ready = self._ready(rejected)
            if ready is not None:
                return ready
            try:
                with self._lock:
                    kind, value = self._next_step(rejected)
                    if kind == "refresh":
                        assert isinstance(value, Tokens)
                        self._refresh_once_sync(value)
                        continue
            finally:
                self._fire()
            if kind == "use":
                assert isinstance(value, Tokens)
                return value.access_token
            assert isinstance(value, float)
            if time.monotonic() + value > deadline:
                raise RefreshUnavailable(f"no usable access token after {self.max_wait:.0f}s of retries")
            time.sleep(value)

    async def _obtain_async(self, rejected: str | None) -> str:
        deadline = time.monotonic() + self.max_wait
        while True:
            ready = self._ready(rejected)
            if ready is not None:  # refreshed by whoever held the lock: no need to queue for it
                return ready
            async with self._loop_lock():
                # A thread may hold the lock; waiting for it must not block this loop.
                while not self._lock.acquire(blocking=False):  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
                try:
                    kind, value = self._next_step(rejected)
                    if kind == "refresh":
                        assert isinstance(value, Tokens)
                        await self._refresh_once_async(value)
                        continue
                finally:
                    self._lock.release()
                    self._fire()
            if kind == "use":
                assert isinstance(value, Tokens)
                return value.access_token
            assert isinstance(value, float)
            if time.monotonic() + value > deadline:
                raise RefreshUnavailable(f"no usable access token after {self.max_wait:.0f}s of retries")
            await asyncio.sleep(value)

    def _ready(self, rejected: str | None) -> str | None:
        """A current token that needs no refresh, read without the lock (or None: take the lock)."""
        tokens = self._tokens
        if (
            tokens is None
            or self._ended is not None
            or tokens.access_token == rejected
            or self._is_due(tokens)
            or not self._is_usable(tokens)
        ):
            return None
        return tokens.access_token

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._loop_locks.get(loop)
        if lock is None:
            lock = self._loop_locks.setdefault(loop, asyncio.Lock())
        return lock

    def _sync_http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(base_url=self.base_url, timeout=self.timeout)
            self._owns_http = True
        return self._http

    def _async_client(self) -> httpx.AsyncClient:
        given: httpx.AsyncClient | None = getattr(self, "_given_async_http", None)
        if given is not None:
            return given
        loop = asyncio.get_running_loop()
        client = self._async_http.get(loop)
        if client is None:
            client = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout)
            self._async_http[loop] = client
        return client

    def __repr__(self) -> str:
        return f"TokenManager({self.base_url!r}, state={self._state!r})"

    def _debug(self) -> dict[str, Any]:
        return {"failures": self._failures, "retry_at": self._retry_at, "refresh_at": self._refresh_at}
