"""Several `keyturn serve` processes on one PostgreSQL, Redis or SQLite store behave as one service."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from ..contract.backends import isolated
from ._http import assert_error, fp, jwt_parts, login, me, refresh, refreshed, why
from ._proxy import fault_proxy
from ._server import cluster, launch_server, stop_server


@pytest.fixture(params=["postgresql", "redis"])
def network_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL of its own on the real PostgreSQL or Redis server."""
    with isolated(request.param, tmp_path) as place:
        yield place.url


def via(url: str, port: int) -> str:
    """``url`` with its host and port replaced by 127.0.0.1:``port``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))


def storm(urls: list[str], refresh_token: str, callers: int) -> list[httpx.Response]:
    """``callers`` threads on their own connections, spread over ``urls``, refresh one token together."""
    barrier = threading.Barrier(callers, timeout=120)

    def call(index: int) -> httpx.Response:
        with httpx.Client(base_url=urls[index % len(urls)], timeout=60) as http:
            assert http.get("/healthz").status_code == 200
            barrier.wait()
            return refresh(http, refresh_token)

    with ThreadPoolExecutor(max_workers=callers) as pool:
        return list(pool.map(call, range(callers)))


GRACE = 8


def test_four_processes_converge_and_share_reuse_detection(network_store: str, tmp_path: Path) -> None:
    """100 refreshes of one token spread over four processes get one successor; a reuse seen by one
    process revokes the session for all."""
    env = {"KEYTURN_STORE_URL": network_store, "KEYTURN_GRACE_PERIOD": str(GRACE)}
    with cluster(tmp_path / "data", 4, env) as group:
        a, b = group.servers[0], group.servers[1]
        with a.client() as http_a, b.client() as http_b:
            # A second session rotated now, to be replayed past the grace period once the storm is over.
            victim = login(http_a, group.username, group.password)
            victim_next = refreshed(http_b, victim["refresh_token"])
            rotated_at = time.monotonic()

            first = login(http_a, group.username, group.password)
            answers = storm([s.url for s in group.servers], first["refresh_token"], 100)
            problems = sorted({why(r) for r in answers if r.status_code != 200})
            assert problems == []
            assert len({fp(r.json()["refresh_token"]) for r in answers}) == 1
            successor = answers[0].json()
            assert (
                me(http_b, refreshed(http_b, successor["refresh_token"])["access_token"]).status_code == 200
            )

            time.sleep(max(0.0, GRACE + 1 - (time.monotonic() - rotated_at)))
            assert_error(refresh(http_a, victim["refresh_token"]), 401, "refresh_token_reused")
            assert_error(refresh(http_b, victim_next["refresh_token"]), 401, "session_revoked")
            assert_error(me(http_b, victim_next["access_token"]), 401, "token_revoked")


@pytest.mark.parametrize("store", ["sqlite", "postgresql", "redis"])
def test_a_process_killed_mid_storm_breaks_no_session(store: str, tmp_path: Path) -> None:
    """SIGKILL in the middle of refreshes: each client's newest token, or a replay of it, still works."""
    with isolated(store, tmp_path) as place:
        env = {"KEYTURN_STORE_URL": place.url}
        with cluster(tmp_path / "data", 3, env) as group:
            survivors = [s.url for s in group.servers[1:]]
            victim = group.servers[0]
            with httpx.Client(base_url=survivors[0], timeout=30) as http:
                clients = [login(http, group.username, group.password)["refresh_token"] for _ in range(12)]
            stop = threading.Event()
            killed = threading.Event()
            before_kill = [0] * len(clients)
            after_kill = [0] * len(clients)

            def client(index: int) -> str:
                """A well-behaved client: keep the old token until a new one has arrived."""
                token = clients[index]
                rng = random.Random(index)
                urls = [victim.url, *survivors]
                while not stop.is_set():
                    url = rng.choice(urls)
                    try:
                        with httpx.Client(base_url=url, timeout=10) as http:
                            response = refresh(http, token)
                    except httpx.HTTPError:
                        continue  # the answer was lost: retry with the same token, elsewhere
                    assert response.status_code == 200, why(response)
                    token = response.json()["refresh_token"]
                    (after_kill if killed.is_set() else before_kill)[index] += 1
                return token

            def wait_until(condition: Callable[[], bool]) -> None:
                deadline = time.monotonic() + 60
                while not condition() and time.monotonic() < deadline:
                    time.sleep(0.05)

            with ThreadPoolExecutor(max_workers=len(clients)) as pool:
                futures = [pool.submit(client, i) for i in range(len(clients))]
                wait_until(lambda: all(before_kill))  # the storm is under way on every client
                os.kill(victim.process.pid, signal.SIGKILL)
                assert victim.process.wait(10) == -signal.SIGKILL
                killed.set()
                wait_until(lambda: all(after_kill))
                stop.set()
                newest = [f.result(timeout=60) for f in futures]

            # Every client refreshed before and after the kill, and its newest token still works.
            assert all(before_kill), before_kill
            assert all(after_kill), after_kill
            with httpx.Client(base_url=survivors[-1], timeout=30) as http:
                for token in newest:
                    after = refreshed(http, token)
                    assert me(http, after["access_token"]).status_code == 200


def test_store_outage_answers_503_changes_nothing_and_recovers(network_store: str, tmp_path: Path) -> None:
    """A store that is unreachable gives a retryable 503, the token is not spent, and the service
    comes back by itself when the store does."""
    target = urlsplit(network_store)
    with fault_proxy(target.hostname or "127.0.0.1", target.port or 0) as proxy:
        env = {"KEYTURN_STORE_URL": via(network_store, proxy.port)}
        with cluster(tmp_path / "data", 1, env) as group, group.server.client() as http:
            pair = login(http, group.username, group.password)
            proxy.cut()
            outage = refresh(http, pair["refresh_token"])
            body = assert_error(outage, 503, "server_error")
            assert body["retryable"] is True
            assert_error(http.get("/readyz"), 503, "server_error")
            proxy.restore()

            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and http.get("/readyz").status_code != 200:
                time.sleep(0.2)
            assert http.get("/readyz").status_code == 200
            after = refreshed(http, pair["refresh_token"])
            # The refused attempt rotated nothing: this is the first rotation of the chain.
            assert jwt_parts(after["refresh_token"])[1]["gen"] == 1
            assert me(http, after["access_token"]).status_code == 200


def test_serve_exits_with_a_clear_error_when_its_store_is_unreachable(tmp_path: Path) -> None:
    """A store that cannot be reached at start-up makes `serve` exit with an error, not hang or half-run."""
    with fault_proxy("127.0.0.1", 6379) as proxy:
        proxy.cut()
        env = {"KEYTURN_STORE_URL": f"redis://127.0.0.1:{proxy.port}/0?prefix=kt-unreachable:"}
        server = launch_server(tmp_path, env)
        try:
            code = server.process.wait(60)
        finally:
            stop_server(server)
    assert code != 0
    assert "server_error" in server.log.read_text() or "StoreUnavailable" in server.log.read_text()
