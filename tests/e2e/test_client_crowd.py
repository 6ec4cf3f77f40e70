"""Issue 5, acceptance 1: a crowd crossing an access token's expiry makes exactly one refresh call.

A real ``keyturn serve`` logs every request; one ``TokenManager`` (a tiny refresh margin, so it refreshes
at the expiry and not ahead of it) is shared by

- 500 asyncio tasks on one loop, each sending ``GET /auth/me`` through ``httpx.AsyncClient``s;
- 50 threads, each with its own ``httpx.Client``;
- both crowds at once: the threads, and the tasks on a loop in a thread of its own.

Each crowd waits until the token has expired on the server (``KEYTURN_LEEWAY=0``: an expired token is
refused at once), then is let go together. The server's access log must show one ``POST /auth/refresh``
and every request answered 200, each with the one new access token.

Two processes of one service (one SQLite file, one key set) play the two sides of the expiry: the crowd's
token comes from a login at one whose access tokens live 4 s, and the manager talks to the other, whose
access tokens live 60 s. The crowd thus crosses one expiry, and only one, however long 550 requests take
on a small, busy machine (in a shared event loop, httpx's pool costs grow with the square of the requests
in flight): a second refresh would be the client's fault, not a second expiry.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from keyturn.client import KeyturnAuth, TokenManager

from ._client import Hooks, Tally, access_exp, wait_until_expired
from ._http import jwt_parts, login
from ._server import Cluster, Server, cluster, start_server, stop_server

SHORT, LONG = 4, 60
"""Access-token lifetimes (seconds) of the login side and of the refresh side."""
TASKS = 500
THREADS = 50
CROWD_TIMEOUT = 120.0
CLIENTS = 10

Outcome = tuple[int, str | None, str | None]
"""What one request of a crowd saw: its status and, on a 200, the session and the access token's ``jti``
that ``/auth/me`` named; otherwise the error code."""


@dataclass
class Service:
    group: Cluster
    """The login side: its first process issues 4 s access tokens."""
    server: Server
    """The refresh side: issues 60 s access tokens; every call of the crowd goes to it."""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data = tmp_path_factory.mktemp("crowd") / "data"
    logged = ("--access-log", "--log-level", "info")
    with cluster(data, 1, lifetime(SHORT), *logged) as group:
        server = start_server(data, lifetime(LONG), *logged)
        try:
            yield Service(group, server)
        finally:
            stop_server(server)


def lifetime(seconds: int) -> dict[str, str]:
    return {"KEYTURN_ACCESS_TOKEN_LIFETIME": str(seconds), "KEYTURN_LEEWAY": "0"}


def error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


def outcome(response: httpx.Response) -> Outcome:
    if response.status_code != 200:
        return response.status_code, error_code(response), None
    body = response.json()
    return 200, body["session"]["session_id"], body["claims"]["jti"]


async def async_crowd(
    manager: TokenManager, url: str, count: int, go: Callable[[], Awaitable[None]]
) -> list[Outcome]:
    """``count`` tasks on this loop send ``GET /auth/me`` once ``go`` returns (they all wait for it).

    The tasks share ``CLIENTS`` ``AsyncClient``s, each with a connection per task: httpcore's pool costs
    O(connections x queued requests) per event, and one pool for all 500 stalls the loop for seconds.
    """
    release = asyncio.Event()
    per_client = -(-count // CLIENTS)
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    try:
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(
                    httpx.AsyncClient(
                        base_url=url, auth=KeyturnAuth(manager), timeout=CROWD_TIMEOUT, limits=limits
                    )
                )
                for _ in range(CLIENTS)
            ]

            async def one(http: httpx.AsyncClient) -> Outcome:
                await release.wait()
                return outcome(await http.get("/auth/me"))

            tasks = [asyncio.create_task(one(clients[i % CLIENTS])) for i in range(count)]
            await asyncio.sleep(0)  # every task is now waiting for the release
            await go()
            release.set()
            return await asyncio.gather(*tasks)
    finally:
        await manager.aclose()


def thread_crowd(
    manager: TokenManager, url: str, count: int, ready: threading.Barrier, go: threading.Event
) -> list[concurrent.futures.Future[Outcome]]:
    """``count`` threads, each with its own ``httpx.Client`` on the shared manager, wait at ``ready``, then
    send ``GET /auth/me`` once ``go`` is set.

    (No connection is opened ahead: it would sit idle until the release, and the server closes idle
    connections after 5 s.)"""

    def one() -> Outcome:
        with httpx.Client(base_url=url, auth=KeyturnAuth(manager), timeout=CROWD_TIMEOUT) as http:
            ready.wait()
            assert go.wait(CROWD_TIMEOUT)
            return outcome(http.get("/auth/me"))

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=count, thread_name_prefix="crowd")
    futures = [pool.submit(one) for _ in range(count)]
    pool.shutdown(wait=False)
    return futures


class Crowd:
    """One manager, started from a fresh login, and what the service has seen since."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.hooks = Hooks()
        with service.group.server.client() as http:
            body = login(http, service.group.username, service.group.password)
        self.manager = TokenManager(service.server.url, refresh_margin=0.1, jitter=0.0, **self.hooks.kwargs())
        self.manager.set_tokens(body)
        self.sid = body["session_id"]
        self.old_jti = jwt_parts(body["access_token"])[1]["jti"]
        assert access_exp(self.manager) - jwt_parts(body["access_token"])[1]["iat"] == SHORT
        self.tallies = Tally(service.server), Tally(service.group.server)
        self.released = 0.0

    def release_at_expiry(self) -> None:
        wait_until_expired(self.manager)
        self.released = time.monotonic()

    def assert_one_refresh(self, outcomes: list[Outcome], expected: int) -> None:
        took = time.monotonic() - self.released
        assert len(outcomes) == expected
        failed = Counter((status, code) for status, code, _ in outcomes if status != 200)
        assert failed == Counter(), "some requests of the crowd failed"
        tally, login_side = self.tallies
        refreshes = tally.count("POST", "/auth/refresh")
        print(f"\ncrowd of {expected}: {refreshes} refresh call(s) on the server, {took:.1f}s")
        assert refreshes == 1
        assert tally.count("POST", "/auth/refresh", 200) == 1
        assert login_side.count("POST", "/auth/refresh") == 0
        assert self.manager.refreshes == 1
        # Everyone went out with the one new token, in the same session, and none was refused on the way.
        assert {sid for _, sid, _ in outcomes} == {self.sid}
        jtis = {jti for _, _, jti in outcomes}
        assert len(jtis) == 1
        assert jtis != {self.old_jti}
        assert tally.statuses("GET", "/auth/me") == Counter({200: expected})
        assert self.hooks.ended == []
        assert self.hooks.refreshed == 2  # the pair it started with, then the one refresh
        assert self.manager.state == "active"


@pytest.fixture
def crowd(service: Service) -> Iterator[Crowd]:
    made = Crowd(service)
    with contextlib.closing(made.manager):
        yield made


def test_five_hundred_async_requests_across_an_expiry_make_one_refresh(
    service: Service, crowd: Crowd
) -> None:

    async def at_expiry() -> None:
        await asyncio.to_thread(crowd.release_at_expiry)

    outcomes = asyncio.run(async_crowd(crowd.manager, service.server.url, TASKS, at_expiry))

    crowd.assert_one_refresh(outcomes, TASKS)


def test_fifty_threads_across_an_expiry_make_one_refresh(service: Service, crowd: Crowd) -> None:
    ready, go = threading.Barrier(THREADS + 1, timeout=CROWD_TIMEOUT), threading.Event()

    futures = thread_crowd(crowd.manager, service.server.url, THREADS, ready, go)
    ready.wait()
    crowd.release_at_expiry()
    go.set()
    outcomes = [f.result(timeout=CROWD_TIMEOUT) for f in futures]

    crowd.assert_one_refresh(outcomes, THREADS)


def test_threads_and_tasks_together_across_an_expiry_make_one_refresh(service: Service, crowd: Crowd) -> None:
    """The strongest form: 50 threads and 500 tasks (on a loop in a thread of its own), one manager."""
    ready, go = threading.Barrier(THREADS + 2, timeout=CROWD_TIMEOUT), threading.Event()

    async def released() -> None:
        await asyncio.to_thread(ready.wait)
        assert await asyncio.to_thread(go.wait, CROWD_TIMEOUT)

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="loop") as loop_thread:
        tasks = loop_thread.submit(
            asyncio.run, async_crowd(crowd.manager, service.server.url, TASKS, released)
        )
        futures = thread_crowd(crowd.manager, service.server.url, THREADS, ready, go)
        ready.wait()
        crowd.release_at_expiry()
        go.set()
        outcomes = [f.result(timeout=CROWD_TIMEOUT) for f in futures]
        outcomes += tasks.result(timeout=CROWD_TIMEOUT)

    crowd.assert_one_refresh(outcomes, THREADS + TASKS)
