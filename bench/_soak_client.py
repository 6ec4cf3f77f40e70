"""One client of the soak (``bench/soak.py``): its own ``TokenManager`` and session, the application's
requests through ``KeyturnAuth``, and what it counts (requests by outcome, refresh attempts at its transport,
refresh cycles). Tokens are told apart by a hash kept in memory; none is printed or logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
from bench._soak_config import LOGIN_TIMEOUT, ME, REFRESH, SoakConfig

from keyturn.client import (
    KeyturnAuth,
    LoginFailed,
    RefreshUnavailable,
    SessionEnded,
    State,
    TokenManager,
    Tokens,
)


class Clock:
    """The wall clock, ``offset`` seconds off."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def now(self) -> float:
        return time.time() + self.offset


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass
class Cycle:
    """One refresh token's refresh (see the module's docstring)."""

    client: int
    started: float
    attempts: int = 0
    ended: float | None = None
    gave_up: bool = False
    late: bool = False
    """The new pair came after the access token it replaced had expired (server time)."""
    log: list[tuple[float, str]] = field(default_factory=list)
    """(monotonic time, outcome) of each attempt: what a failed cycle's report shows."""


@dataclass
class Tally:
    """What every client adds to: counters only, no token."""

    app: Counter[str] = field(default_factory=Counter)
    refresh_attempts: Counter[str] = field(default_factory=Counter)
    logical: int = 0
    logical_ok: int = 0
    logical_abandoned: int = 0
    wrong_session: int = 0
    degraded_episodes: int = 0
    longest_degraded: float = 0.0
    ends: list[tuple[int, str, float, str | None]] = field(default_factory=list)
    """(client, reason, seconds into the run, session id) per ``on_session_ended`` during the run."""
    logouts: int = 0


class SoakClient:
    def __init__(self, index: int, config: SoakConfig, url: str, tally: Tally) -> None:
        self.index = index
        self.tally = tally
        self.skew = (0.0, config.skew, -config.skew)[index % 3]
        self.rng = random.Random(config.seed * 1_000_003 + index)
        self.cycles: dict[str, Cycle] = {}
        self.current: Tokens | None = None
        self.session_id: str | None = None
        self.ended: str | None = None
        self.logging_out = False
        """Set just before the logout after the run: the one session end that is expected."""
        self.started = time.monotonic()
        self._degraded_at: float | None = None
        self.token_http = httpx.AsyncClient(
            base_url=url, timeout=config.timeout, transport=_CountingTransport(self)
        )
        self.manager = TokenManager(
            url,
            refresh_margin=config.refresh_margin,
            timeout=config.timeout,
            clock=Clock(self.skew),
            rng=random.Random(self.rng.random()),
            on_state=self._on_state,
            on_session_ended=self._on_session_ended,
            async_http=self.token_http,
        )
        self.api = httpx.AsyncClient(
            base_url=url,
            timeout=config.timeout,
            auth=KeyturnAuth(self.manager, rng=random.Random(self.rng.random())),
        )

    async def login(self, username: str, password: str) -> None:
        """Log in through the proxy (no faults yet), with time for the password hash of many logins."""
        timeout = self.token_http.timeout
        self.token_http.timeout = httpx.Timeout(LOGIN_TIMEOUT)
        try:
            for attempt in range(60):
                try:
                    tokens = await self.manager.alogin(username, password)
                    break
                except LoginFailed as exc:  # the bounded login queue: 503, Retry-After 1 s
                    if exc.status != 503 or attempt == 59:
                        raise
                    await asyncio.sleep(1)
        finally:
            self.token_http.timeout = timeout
        self.current, self.session_id = tokens, tokens.session_id
        self.started = time.monotonic()
        self.manager.on_refreshed = self._on_refreshed  # from now on: every call is a refresh

    async def aclose(self) -> None:
        await self.api.aclose()
        await self.token_http.aclose()

    # -- the manager's callbacks

    def _on_refreshed(self, new: Tokens) -> None:
        old = self.current
        self.current = new
        if old is None:
            return
        cycle = self.cycles.get(fingerprint(old.refresh_token))
        if cycle is None:  # cannot happen: a refresh is always sent through the transport below
            cycle = self.cycles[fingerprint(old.refresh_token)] = Cycle(self.index, time.monotonic(), 1)
        cycle.ended = time.monotonic()
        cycle.late = self.manager.server_now() > old.access_expires_at

    def _on_state(self, state: State) -> None:
        now = time.monotonic()
        if state == "degraded" and self._degraded_at is None:
            self._degraded_at = now
            self.tally.degraded_episodes += 1
        elif state != "degraded" and self._degraded_at is not None:
            self.tally.longest_degraded = max(self.tally.longest_degraded, now - self._degraded_at)
            self._degraded_at = None

    def _on_session_ended(self, reason: str) -> None:
        self.ended = reason
        if self.logging_out and reason == "logout":
            self.tally.logouts += 1
        else:
            self.tally.ends.append((self.index, reason, time.monotonic() - self.started, self.session_id))

    # -- the application

    def open_cycle(self) -> Cycle | None:
        if self.current is None:
            return None
        cycle = self.cycles.get(fingerprint(self.current.refresh_token))
        return cycle if cycle is not None and cycle.ended is None else None

    async def call(self) -> str:
        """One ``GET /auth/me``, as the application sees it."""
        try:
            response = await self.api.get(ME)
        except RefreshUnavailable:
            cycle = self.open_cycle()
            if cycle is not None:
                cycle.gave_up = True
            return "RefreshUnavailable"
        except SessionEnded:
            return "SessionEnded"
        except httpx.TimeoutException:
            return "timeout"
        except httpx.TransportError as exc:
            return type(exc).__name__
        if 200 <= response.status_code < 300:
            if response.json()["session"]["session_id"] != self.session_id:
                self.tally.wrong_session += 1
            return "2xx"
        if response.status_code == 401:
            try:
                code = response.json().get("error")
            except ValueError:
                code = None
            return f"401 {code}"
        return str(response.status_code)

    async def logical_request(self, give_up_at: float) -> bool:
        """Call until a 2xx (backing off), the session ends or ``give_up_at``."""
        self.tally.logical += 1
        attempt = 0
        while True:
            attempt += 1
            outcome = await self.call()
            self.tally.app[outcome] += 1
            if outcome == "2xx":
                self.tally.logical_ok += 1
                return True
            if self.ended is not None or time.monotonic() > give_up_at:
                self.tally.logical_abandoned += 1
                return False
            await asyncio.sleep(self.rng.uniform(0, min(4.0, 0.25 * 2**attempt)))

    async def run(self, window: Window, pause: float) -> None:
        """Requests until the faults stop (``window.stop_at``, which the fault schedule may move on)."""
        rng = random.Random(self.rng.random())
        await asyncio.sleep(rng.uniform(0, pause))
        while time.monotonic() < window.stop_at and self.ended is None:
            await self.logical_request(window.stop_at + window.drain_timeout)
            await asyncio.sleep(rng.uniform(0.5, 1.5) * pause)

    async def drain(self, drain_until: float, pause: float) -> bool:
        """Requests until one succeeds with the manager ``active`` again (no refresh pending)."""
        while self.ended is None and time.monotonic() < drain_until:
            ok = await self.logical_request(drain_until)
            if ok and self.manager.state == "active":
                return True
            await asyncio.sleep(pause)
        return False


@dataclass
class Window:
    stop_at: float
    """When the faults stop and the request tasks end (monotonic)."""
    drain_timeout: float


class _CountingTransport(httpx.AsyncBaseTransport):
    """The manager's transport: counts refresh attempts by outcome and opens refresh cycles."""

    def __init__(self, client: SoakClient) -> None:
        self.client = client
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != REFRESH:
            return await self.inner.handle_async_request(request)
        key = fingerprint(str(json.loads(request.content)["refresh_token"]))
        cycle = self.client.cycles.setdefault(key, Cycle(self.client.index, time.monotonic()))
        cycle.attempts += 1
        sent = time.monotonic()
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TimeoutException:
            self._count(cycle, sent, "timeout")
            raise
        except httpx.TransportError as exc:
            self._count(cycle, sent, type(exc).__name__)
            raise
        if response.status_code == 200:
            self._count(cycle, sent, "200")
        else:
            await response.aread()
            try:
                code = json.loads(response.content).get("error")
            except (ValueError, AttributeError):
                code = None
            self._count(cycle, sent, f"{response.status_code} {code}" if code else str(response.status_code))
        return response

    def _count(self, cycle: Cycle, sent: float, outcome: str) -> None:
        self.client.tally.refresh_attempts[outcome] += 1
        cycle.log.append((sent, outcome))

    async def aclose(self) -> None:
        await self.inner.aclose()
