"""Soak: many Python clients keep their sessions alive through a day of token lifetimes and faults.

    python bench/soak.py [--clients 50] [--lifetimes 96] [--access-lifetime 3] [--seed N] [--quick]

Issue 5, acceptance 2. The script starts its own ``keyturn serve`` (SQLite in a temporary data directory,
users made with the ``keyturn`` CLI, access tokens of ``--access-lifetime`` seconds, a leeway of 1 s, the
access log on) and puts the fault proxy of ``tests/e2e/_faults.py`` in front of it. Then ``--clients``
clients, each with its own ``TokenManager`` and its own session (logged in through the proxy, users
shared round-robin), call ``GET /auth/me`` through the proxy with ``httpx.AsyncClient`` and
``KeyturnAuth`` every quarter of a lifetime or so (``--tasks`` requests in flight per client), for
``--lifetimes`` lifetimes: 96 lifetimes of the default 15-minute token are 24 hours. A third of the
clients have a clock 10 minutes fast, a third 10 minutes slow. Their ``refresh_margin`` is scaled with
the lifetime (300 s of 900 s), so that ``min(refresh_margin, lifetime / 3)`` applies as it does by
default.

Faults, all through the proxy: a background of dropped connections (before and after the server saw the
request), delayed answers, 503 and 429 on every path (5.5% of requests); and bursts, evenly spaced: 503
on everything for 2 lifetimes, 429 on everything for 1, everything down for 1.5, the server restarted
once in the middle (stopped, started again on the same data directory on a new port, the proxy pointed at
it), lost refresh answers (half of ``/auth/refresh`` answered by the server, then the connection
dropped) for 2, every answer later than the client's timeout for 1 (see :func:`schedule` for the order).
Then the faults stop and each client goes on until a request of its own succeeds and its manager is
``active`` again (the drain); then each logs out.

What is counted:

- requests: each logical request of the application is one ``GET /auth/me`` that the application
  retries itself (backoff) until it gets a 2xx; its attempts are counted by what the application saw
  (2xx, 401 by code, 5xx/429 after ``KeyturnAuth``'s own retries, transport errors, timeouts,
  ``RefreshUnavailable``, ``SessionEnded``).
- refresh attempts: every ``POST /auth/refresh`` a client sent, by outcome, counted at its transport.
- **refresh cycles**: a cycle is one client's refresh of one refresh token, from its first attempt until
  a new pair is stored (``TokenManager.refreshes`` counts these). A cycle **succeeds within its retries**
  when the new pair is stored while the session is alive and without the client having given up on it
  meanwhile (``RefreshUnavailable``: no usable access token after ``max_wait`` = 60 s of retries);
  a cycle still open after the drain failed. The rate is succeeded cycles / cycles; target >= 99.9%.
- session ends (``on_session_ended``): none is expected during the run (target 0 unexpected); the
  logouts after it are counted apart.
- at the server: ``POST /auth/refresh`` lines of the access log by status, and the rotation, grace-replay
  and reuse events of its log. Each successful cycle is exactly one rotation.

The shared implementation is :func:`run_soak`; ``tests/e2e/test_soak.py`` runs a short version of it.
No token or password is printed or logged: tokens are told apart by a hash kept in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests._secrets import new_password  # noqa: E402
from tests.e2e._faults import Faults, HttpFaultProxy, http_fault_proxy  # noqa: E402
from tests.e2e._server import Server, launch_server, run_cli, stop_server, wait_ready  # noqa: E402

from keyturn.client import (  # noqa: E402
    KeyturnAuth,
    LoginFailed,
    RefreshUnavailable,
    SessionEnded,
    State,
    TokenManager,
    Tokens,
)
from keyturn.client._session import USABLE_MARGIN  # noqa: E402

REFRESH = "/auth/refresh"
ME = "/auth/me"
DEFAULT_MARGIN = 300.0
DEFAULT_LIFETIME = 900.0
SUCCESS_TARGET = 99.9
LOGIN_TIMEOUT = 120.0

BACKGROUND = Faults(
    drop_before=0.01, drop_after=0.01, delay=0.02, status_503=0.01, status_429=0.005, delay_seconds=0.5
)
"""Faults on every path at all times outside the bursts: 5.5% of requests."""


# -- configuration and schedule ------------------------------------------------------------------------


@dataclass(frozen=True)
class SoakConfig:
    clients: int = 50
    lifetimes: float = 96.0
    """How long the faults run, in access-token lifetimes (96 x 15 min = 24 h)."""
    access_lifetime: int = 3
    """``KEYTURN_ACCESS_TOKEN_LIFETIME`` of the server, seconds."""
    seed: int = 1
    skew: float = 600.0
    """A third of the clients run this many seconds fast, a third as many slow."""
    tasks: int = 2
    """Requests in flight per client (tasks sharing its manager)."""
    request_every: float = 0.25
    """Mean pause between one task's requests, in lifetimes."""
    timeout: float = 5.0
    """The clients' HTTP timeout (refresh and requests), seconds."""
    leeway: int = 1
    grace_period: int = 30
    """``KEYTURN_GRACE_PERIOD``: the default (the client's backoff is not scaled either)."""
    users: int = 5
    drain_timeout: float = 180.0
    """After the faults: how long the clients get to show a working session."""
    restart: bool = True
    burst_share: float = 0.6
    """The bursts are shortened to fill at most this share of the run."""

    @classmethod
    def quick(cls, **changes: object) -> SoakConfig:
        """The short version (``--quick``, the test): 10 clients over 8 lifetimes, every burst shortened."""
        values: dict[str, object] = {
            "clients": 10,
            "lifetimes": 8.0,
            "users": 1,
            "burst_share": 0.35,
            **changes,
        }
        return cls(**values)  # type: ignore[arg-type]

    @property
    def refresh_margin(self) -> float:
        return DEFAULT_MARGIN * self.access_lifetime / DEFAULT_LIFETIME


@dataclass(frozen=True)
class Phase:
    name: str
    gap: float
    """Lifetimes of background faults before it (after the previous phase's end)."""
    length: float
    """In lifetimes; a restart lasts as long as it takes."""
    faults: Faults | None = None
    """The proxy's policy during the phase; None with ``down`` or ``restart``."""
    down: bool = False
    restart: bool = False


def schedule(config: SoakConfig) -> tuple[list[Phase], float]:
    """The bursts, evenly spread over the run, and the background stretch after the last one.

    Bursts are shortened when they would fill more than ``burst_share`` of the run. The bursts that lose
    refresh answers come after the outages: in a short run the gaps between bursts are shorter than the
    server's grace period, and a lost answer followed by an outage long enough to push the client's
    backoff past the grace period ends the session today (``tests/e2e/test_soak.py``,
    ``test_a_lost_answer_then_an_outage_keeps_the_session``, a strict xfail). With 96 lifetimes the gaps
    are longer than the grace period and the order makes no difference.
    """
    timeout_delay = config.timeout + 1.0
    late = Faults(delay=1.0, delay_seconds=timeout_delay)
    bursts: list[tuple[str, float, Faults | None, bool, bool]] = [
        ("503 on everything", 2.0, Faults(status_503=1.0), False, False),
        ("429 on everything", 1.0, Faults(status_429=1.0), False, False),
        ("everything down", 1.5, None, True, False),
        ("server restart", 0.0, None, False, True),
        ("lost refresh answers (50%)", 2.0, Faults(drop_after=0.5, paths=(REFRESH,)), False, False),
        (f"every answer {timeout_delay:g} s late", 1.0, late, False, False),
    ]
    if not config.restart:
        bursts = [b for b in bursts if not b[4]]
    total = sum(b[1] for b in bursts)
    scale = min(1.0, config.burst_share * config.lifetimes / total)
    gap = (config.lifetimes - total * scale) / (len(bursts) + 1)
    phases = [Phase(name, gap, n * scale, faults, down, restart) for name, n, faults, down, restart in bursts]
    return phases, gap


# -- per client ------------------------------------------------------------------------------------------


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


# -- the server ------------------------------------------------------------------------------------------


@dataclass
class ServerSide:
    refresh_status: Counter[str] = field(default_factory=Counter)
    me_status: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    revoked_reasons: Counter[str] = field(default_factory=Counter)
    timeline: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    """Per session id: (wall time, event) of its rotations, replays, reuse and revocation."""


def read_server_logs(logs: list[Path]) -> ServerSide:
    """Count the access log's refresh and ``/auth/me`` lines by status, and the session events."""
    side = ServerSide()
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            event = record.get("event")
            if isinstance(event, str):
                side.events[event] += 1
                if event == "session.revoked":
                    side.revoked_reasons[str(record.get("reason"))] += 1
                sid = record.get("sid")
                if isinstance(sid, str) and isinstance(record.get("time"), str):
                    when = datetime.fromisoformat(record["time"]).timestamp()
                    side.timeline.setdefault(sid, []).append((when, event))
                continue
            message = record.get("message")
            if record.get("logger") != "uvicorn.access" or not isinstance(message, str):
                continue
            status = message.rsplit(" ", 1)[-1]
            if f'"POST {REFRESH} ' in message:
                side.refresh_status[status] += 1
            elif f'"GET {ME} ' in message:
                side.me_status[status] += 1
    return side


class Service:
    """``keyturn serve`` on one data directory, restartable; every run's log is kept for counting."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.env = env
        self.server: Server | None = None
        self.logs: list[Path] = []

    def start(self) -> Server:
        server = launch_server(self.data_dir, self.env, "--log-level", "debug", "--access-log")
        self.logs.append(server.log)
        self.server = wait_ready(server)
        return server

    def stop(self) -> None:
        if self.server is not None:
            stop_server(self.server)

    def add_user(self, name: str) -> str:
        password = new_password()
        done = run_cli(
            self.data_dir, "users", "add", name, "--password-stdin", stdin=password + "\n", env=self.env
        )
        if done.returncode != 0:
            raise RuntimeError(f"keyturn users add failed ({done.returncode})")
        return password


@contextlib.contextmanager
def own_service(config: SoakConfig) -> Iterator[Service]:
    with tempfile.TemporaryDirectory(prefix="keyturn-soak-") as tmp:
        env = {
            "KEYTURN_ACCESS_TOKEN_LIFETIME": str(config.access_lifetime),
            "KEYTURN_LEEWAY": str(config.leeway),
            "KEYTURN_GRACE_PERIOD": str(config.grace_period),
            # The clients share one address and live hundreds of times faster than real ones (3 s tokens,
            # not 15 min): the per-address refresh limit, sized for real time, is raised out of their
            # reach. The per-session limit stays at its default, which a correct client never meets.
            "KEYTURN_RATE_LIMIT_REFRESH_PER_IP": "1000000/1",
        }
        service = Service(Path(tmp) / "data", env)
        service.data_dir.mkdir(mode=0o700)
        try:
            yield service
        finally:
            service.stop()


# -- the report ------------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


@dataclass
class Report:
    config: SoakConfig
    phases: list[tuple[str, float, float]]
    """(name, seconds into the run, seconds it lasted) of each burst as it happened."""
    faults_off: float
    """Seconds into the run when the faults stopped."""
    start: float
    """Monotonic time the faulty run began."""
    wall_start: float
    """The same moment by the wall clock (the server log's times)."""
    duration: float
    """Seconds from the start of the faults until every request task was done (without set-up and drain)."""
    drain: float
    restart_downtime: float | None
    tally: Tally
    cycles: list[Cycle]
    refreshes: list[int]
    """``TokenManager.refreshes`` per client."""
    drained: int
    """Clients that showed a working, ``active`` session after the faults."""
    faults: Counter[str]
    faults_by_path: Counter[str]
    server: ServerSide

    def app_count(self, which: Callable[[str], bool]) -> int:
        return sum(v for k, v in self.tally.app.items() if which(k))

    @staticmethod
    def succeeded(cycle: Cycle) -> bool:
        return cycle.ended is not None and not cycle.gave_up

    @property
    def cycles_ok(self) -> int:
        return sum(1 for c in self.cycles if self.succeeded(c))

    def failed_cycles(self) -> list[str]:
        """Each failed cycle's attempts: seconds into the run and what the client saw."""
        lines = []
        for cycle in self.cycles:
            if self.succeeded(cycle):
                continue
            steps = ", ".join(f"{t - self.start:.1f} s {what}" for t, what in cycle.log)
            end = "no new pair" if cycle.ended is None else "new pair after RefreshUnavailable"
            lines.append(f"            client {cycle.client}: {end}; attempts: {steps}")
        return lines

    def server_timelines(self) -> list[str]:
        """What the server logged about each session that ended during the run (its last 8 events)."""
        lines = []
        for index, _, _, sid in self.tally.ends[:5]:
            events = self.server.timeline.get(sid or "", [])[-8:]
            steps = ", ".join(f"{when - self.wall_start:.1f} s {event}" for when, event in events)
            lines.append(f"            client {index} at the server: {steps}")
            late = self.retry_after_grace(sid)
            if late is not None:
                lines.append(
                    f"            client {index}: its retry came {late:.1f} s after the server had rotated "
                    f"the token it presented (grace period {self.config.grace_period} s): the answer of that "
                    "rotation was lost and the client's backoff outlasted the grace period"
                )
        return lines

    def retry_after_grace(self, sid: str | None) -> float | None:
        """For a session revoked for reuse: how long after the last rotation the reused token came, when
        that is past the grace period (a lost answer retried too late); else None."""
        events = self.server.timeline.get(sid or "", [])
        reuse = next((when for when, event in events if event == "session.reuse_detected"), None)
        if reuse is None:
            return None
        rotations = [when for when, event in events if event == "session.rotated" and when <= reuse]
        if not rotations or reuse - rotations[-1] <= self.config.grace_period:
            return None
        return reuse - rotations[-1]

    def ends_from_late_retries(self) -> list[tuple[int, str, float, str | None]]:
        """The session ends that a refresh retried past the server's grace period explains (see
        ``test_a_lost_answer_then_an_outage_keeps_the_session``)."""
        explained = []
        for end in self.tally.ends:
            index, reason, _, sid = end
            rotations = sum(1 for _, e in self.server.timeline.get(sid or "", []) if e == "session.rotated")
            if (
                reason == "refresh_token_reused"
                and self.retry_after_grace(sid) is not None
                # the server rotated once more than the client stored: that one answer was lost
                and rotations == self.refreshes[index] + 1
            ):
                explained.append(end)
        return explained

    @property
    def success_rate(self) -> float:
        return 100.0 * self.cycles_ok / len(self.cycles) if self.cycles else 100.0

    @property
    def unexpected_ends(self) -> list[tuple[int, str, float, str | None]]:
        return self.tally.ends  # no session end is expected during the run

    @property
    def passed(self) -> bool:
        return not self.unexpected_ends and self.success_rate >= SUCCESS_TARGET

    def lines(self) -> list[str]:
        c, t, s = self.config, self.tally, self.server
        served_lifetime = max(c.access_lifetime - 1, 0)
        margin = min(c.refresh_margin, served_lifetime / 3)
        durations = [x.ended - x.started for x in self.cycles if x.ended is not None]
        attempts = sum(t.refresh_attempts.values())
        per_lifetime = sum(self.refreshes) / max(len(self.refreshes), 1) / c.lifetimes
        rotated = s.events["session.rotated"]
        app = ", ".join(f"{k} {v}" for k, v in sorted(t.app.items(), key=lambda kv: -kv[1]))
        out = [
            f"clients     {c.clients} ({c.tasks} request tasks each; {c.clients - 2 * (c.clients // 3)} "
            f"on time, {(c.clients + 1) // 3} {c.skew / 60:+g} min, {c.clients // 3} "
            f"{-c.skew / 60:+g} min), seed {c.seed}",
            f"lifetimes   {c.lifetimes:g} of {c.access_lifetime} s (= {c.lifetimes * 15 / 60:g} h of 15-min "
            f"tokens); served expires_in {served_lifetime} s (whole-second exp), refresh due "
            f"{margin:.2f} s before expiry (min(margin {c.refresh_margin:.2f}, lifetime/3)), "
            f"not sent within {USABLE_MARGIN:g} s of it; leeway {c.leeway} s",
            f"duration    {self.faults_off:.1f} s of faults, request tasks done at {self.duration:.1f} s, "
            f"then {self.drain:.1f} s drain"
            + (
                f"; restart: server unreachable {self.restart_downtime:.1f} s"
                if self.restart_downtime
                else ""
            ),
            "bursts      "
            + "; ".join(f"{name} at {at:.1f} s for {lasted:.1f} s" for name, at, lasted in self.phases),
            f"requests    {t.logical} logical GET {ME}: {t.logical_ok} got a 2xx, {t.logical_abandoned} "
            f"abandoned; {sum(t.app.values())} calls as the app saw them: {app}",
            f"            the app saw: 401 {self.app_count(lambda k: k.startswith('401'))}"
            + "".join(f" ({k} {v})" for k, v in sorted(t.app.items()) if k.startswith("401"))
            + f", 5xx/429 after KeyturnAuth's retries {self.app_count(lambda k: k.isdigit())}, "
            f"RefreshUnavailable {t.app['RefreshUnavailable']}, SessionEnded {t.app['SessionEnded']}, "
            f"timeouts {t.app['timeout']}, other transport errors "
            f"{self.app_count(lambda k: k.endswith('Error'))}; wrong session in a 2xx: {t.wrong_session}",
            f"refresh     {attempts} attempts: "
            + ", ".join(f"{k} {v}" for k, v in sorted(t.refresh_attempts.items(), key=lambda kv: -kv[1])),
            f"            {sum(self.refreshes)} refreshes succeeded (TokenManager.refreshes; per client "
            f"{min(self.refreshes, default=0)}..{max(self.refreshes, default=0)}, "
            f"{per_lifetime:.2f} per lifetime)",
            f"            {len(self.cycles)} refresh cycles; attempts per cycle max "
            f"{max((x.attempts for x in self.cycles), default=0)}; time to a new pair p50 "
            f"{percentile(durations, 50):.2f} s, p99 {percentile(durations, 99):.2f} s, max "
            f"{max(durations, default=0):.2f} s; {sum(x.late for x in self.cycles)} came after the "
            f"replaced access token expired; {sum(x.gave_up for x in self.cycles)} saw RefreshUnavailable",
            *self.failed_cycles()[:10],
            f"            degraded episodes {t.degraded_episodes}, longest {t.longest_degraded:.1f} s",
            f"            refreshes succeeding within their retries: {self.success_rate:.3f}% "
            f"({self.cycles_ok} of {len(self.cycles)} cycles: new pair stored, session alive, client "
            f"never gave up (RefreshUnavailable) on it)",
            f"server      POST {REFRESH}: {sum(s.refresh_status.values())} ("
            + ", ".join(f"{k} {v}" for k, v in sorted(s.refresh_status.items()))
            + f"); GET {ME}: {sum(s.me_status.values())} ("
            + ", ".join(f"{k} {v}" for k, v in sorted(s.me_status.items()))
            + ")",
            f"            rotations {rotated} (= client refreshes: "
            f"{'yes' if rotated == sum(self.refreshes) else 'NO'}), grace replays "
            f"{s.events['session.replayed']}, reuse detected {s.events['session.reuse_detected']}, "
            f"sessions revoked {dict(s.revoked_reasons) or 0}",
            f"sessions    ended during the run: {len(t.ends)} (expected 0, unexpected {len(t.ends)})"
            + "".join(f"; client {i}: {r} at {at:.1f} s" for i, r, at, _ in t.ends[:5])
            + f"; alive and active after the drain {self.drained} of {c.clients}; logged out after: "
            f"{t.logouts}",
            *self.server_timelines(),
            "faults      "
            + ", ".join(
                f"{k} {v}"
                for k, v in sorted(self.faults.items())
                if k not in ("connections", "requests", "forwarded")
            )
            + f" (of {self.faults['requests']} requests at the proxy, {self.faults['forwarded']} forwarded "
            f"untouched)",
            "            by path: " + ", ".join(f"{k} {v}" for k, v in sorted(self.faults_by_path.items())),
            f"{'PASS' if self.passed else 'FAIL'}        unexpected session ends {len(self.unexpected_ends)} "
            f"(target 0), refreshes succeeding within their retries {self.success_rate:.3f}% "
            f"(target >= {SUCCESS_TARGET}%)",
        ]
        return out


# -- the run ---------------------------------------------------------------------------------------------


@dataclass
class _Run:
    clients: list[SoakClient]
    tally: Tally
    start: float
    wall_start: float
    duration: float
    faults_off: float
    phases: list[tuple[str, float, float]]
    drain: float
    downtime: float | None
    drained: int


async def _drive(
    config: SoakConfig,
    service: Service,
    proxy: HttpFaultProxy,
    users: list[tuple[str, str]],
    say: Callable[[str], None],
) -> _Run:
    tally = Tally()
    lifetime = float(config.access_lifetime)
    clients = [SoakClient(i, config, proxy.url, tally) for i in range(config.clients)]
    try:
        gate = asyncio.Semaphore(4)

        async def login(client: SoakClient) -> None:
            name, password = users[client.index % len(users)]
            async with gate:
                await client.login(name, password)

        await asyncio.gather(*(login(c) for c in clients))
        say(f"{len(clients)} clients logged in; faults on for {config.lifetimes:g} lifetimes")
        phases, final_gap = schedule(config)
        proxy.faults = BACKGROUND
        start, wall_start = time.monotonic(), time.time()
        for client in clients:
            client.started = start
        window = Window(start + config.lifetimes * lifetime, config.drain_timeout)
        pause = config.request_every * lifetime
        downtime: list[float] = []
        done: list[tuple[str, float, float]] = []

        async def restart() -> None:
            began = time.monotonic()
            await asyncio.to_thread(service.stop)
            server = await asyncio.to_thread(service.start)
            proxy.set_upstream(server.url)
            downtime.append(time.monotonic() - began)

        async def faults() -> None:
            for phase in phases:
                await asyncio.sleep(phase.gap * lifetime)
                began = time.monotonic()
                say(f"{began - start:6.1f} s  {phase.name}")
                if phase.restart:
                    await restart()
                elif phase.down:
                    await asyncio.to_thread(proxy.down)
                else:
                    assert phase.faults is not None
                    proxy.faults = phase.faults
                await asyncio.sleep(max(0.0, began + phase.length * lifetime - time.monotonic()))
                proxy.up()
                proxy.faults = BACKGROUND
                done.append((phase.name, began - start, time.monotonic() - began))
            # A restart that took long moves the end on: the last stretch of background is never cut short.
            window.stop_at = max(window.stop_at, time.monotonic() + final_gap * lifetime)
            await asyncio.sleep(max(0.0, window.stop_at - time.monotonic()))
            proxy.clear()
            proxy.up()
            say(f"{time.monotonic() - start:6.1f} s  faults off")

        runs = [c.run(window, pause) for c in clients for _ in range(config.tasks)]
        await asyncio.gather(faults(), *runs)
        stopped = time.monotonic()
        say(f"{stopped - start:6.1f} s  every request task done; draining")
        drain_until = stopped + config.drain_timeout
        drained = await asyncio.gather(*(c.drain(drain_until, pause) for c in clients))
        drain = time.monotonic() - stopped
        for client in clients:
            if client.ended is None:
                client.logging_out = True
                await client.manager.alogout()
        return _Run(
            clients=clients,
            tally=tally,
            start=start,
            wall_start=wall_start,
            duration=stopped - start,
            faults_off=window.stop_at - start,
            phases=done,
            drain=drain,
            downtime=downtime[0] if downtime else None,
            drained=sum(drained),
        )
    finally:
        for client in clients:
            await client.aclose()


def run_soak(config: SoakConfig, say: Callable[[str], None] = lambda _: None) -> Report:
    """Start a server and the proxy, run the clients through the faults, stop everything, count."""
    with own_service(config) as service:
        count = max(1, min(config.users, config.clients))
        users = [(f"soak{i}", service.add_user(f"soak{i}")) for i in range(count)]
        server = service.start()
        with http_fault_proxy(server.url, seed=config.seed) as proxy:
            run = asyncio.run(_drive(config, service, proxy, users, say))
            history = proxy.history()
            faults = proxy.counts()
        service.stop()
        side = read_server_logs(service.logs)
    return Report(
        config=config,
        phases=run.phases,
        faults_off=run.faults_off,
        start=run.start,
        wall_start=run.wall_start,
        duration=run.duration,
        drain=run.drain,
        restart_downtime=run.downtime,
        tally=run.tally,
        cycles=[cycle for c in run.clients for cycle in c.cycles.values()],
        refreshes=[c.manager.refreshes for c in run.clients],
        drained=run.drained,
        faults=faults,
        faults_by_path=Counter(f"{path} {outcome}" for _, path, outcome in history if outcome != "forwarded"),
        server=side,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, help="clients, each its own session (50; --quick: 10)")
    parser.add_argument(
        "--lifetimes", type=float, help="run length in access-token lifetimes (96; --quick: 10)"
    )
    parser.add_argument(
        "--access-lifetime", type=int, default=3, help="server's access-token lifetime, s (3)"
    )
    parser.add_argument("--tasks", type=int, default=2, help="requests in flight per client (2)")
    parser.add_argument("--seed", type=int, default=1, help="faults, jitter and pauses (1)")
    parser.add_argument("--quick", action="store_true", help="the short version the tests run")
    parser.add_argument("--quiet", action="store_true", help="only the figures")
    args = parser.parse_args()
    changes: dict[str, object] = {
        "access_lifetime": args.access_lifetime,
        "tasks": args.tasks,
        "seed": args.seed,
    }
    if args.clients is not None:
        changes["clients"] = args.clients
    if args.lifetimes is not None:
        changes["lifetimes"] = args.lifetimes
    config = SoakConfig.quick(**changes) if args.quick else SoakConfig(**changes)  # type: ignore[arg-type]

    def say(text: str) -> None:
        if not args.quiet:
            print(text, flush=True)

    report = run_soak(config, say)
    print("\n".join(report.lines()))
    raise SystemExit(0 if report.passed else 1)


if __name__ == "__main__":
    main()
