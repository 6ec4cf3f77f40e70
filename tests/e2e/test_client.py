"""Issue 5's acceptance, against a real ``keyturn serve``: the Python client keeps one session alive.

- the requests adapter keeps a session alive across expiries (acceptance 4), and a token that expired
  unnoticed (the client's clock stood still) is refreshed on the 401 and the request retried once;
- a misconfigured refresh call (``invalid_request``) ends the session at once (it can never succeed);
- a ``FileTokenStore`` hands a session from one process to the next, which refreshes it in the file
  (acceptance 5); two managers on one store make one refresh between them;
- a refresh whose answer was lost (through the fault proxy) is retried with the same refresh token and the
  grace period gives the same successor: the session survives, no reuse is detected (acceptance 6).

The crowds of acceptance 1 are in ``test_client_crowd.py``, the ends of a session (acceptance 2) in
``test_client_session_end.py``, SimpleJWT (acceptance 3) in ``test_client_simplejwt.py``.

Access tokens live 4 s here (``KEYTURN_LEEWAY=0``, so an expired one is refused at once); the tests wait
out those lifetimes, and poll everything else with deadlines. What the server did is read from its access
log (:class:`._client.Tally`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import os
import stat
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests

from keyturn.client import (
    KEYTURN,
    FileTokenStore,
    KeyturnAuth,
    SessionEnded,
    TokenManager,
)
from keyturn.client.requests_auth import KeyturnRequestsAuth
from keyturn.clock import FrozenClock

from ._client import (
    Hooks,
    Tally,
    access_exp,
    events,
    refresh_generation,
    result_of,
    signed_in,
    token_file_client,
    wait_until_expired,
)
from ._faults import HttpFaultProxy, http_fault_proxy
from ._http import fp, me, refresh, why
from ._server import Cluster, cluster

LIFETIME = 4
REFRESH = ("/auth/refresh",)
THREADS = 20


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A token service with 4 s access tokens that logs every request."""
    data = tmp_path_factory.mktemp("client") / "data"
    env = {"KEYTURN_ACCESS_TOKEN_LIFETIME": str(LIFETIME), "KEYTURN_LEEWAY": "0"}
    with cluster(data, 1, env, "--access-log", "--log-level", "info") as group:
        yield group


# -- acceptance 4: the requests adapter --------------------------------------------------------------


def test_requests_adapter_keeps_a_session_alive_across_expiries(service: Cluster) -> None:
    hooks = Hooks()
    manager = TokenManager(service.server.url, **hooks.kwargs())  # the default margin: a third of 4 s
    with contextlib.closing(manager), requests.Session() as session:
        manager.login(service.username, service.password)
        assert manager.tokens is not None
        sid, first_refresh = manager.tokens.session_id, manager.tokens.refresh_token
        until = access_exp(manager) + LIFETIME + 0.5  # the login's token and its successor have expired
        tally = Tally(service.server)
        session.auth = KeyturnRequestsAuth(manager)

        statuses: Counter[int] = Counter()
        carried: set[str] = set()
        retried = 0
        while manager.server_now() < until:
            response = session.get(service.server.url + "/auth/me", timeout=30)
            statuses[response.status_code] += 1
            retried += len(response.history)
            if response.status_code == 200:
                assert response.json()["session"]["session_id"] == sid
                carried.add(response.json()["claims"]["jti"])
            time.sleep(0.05)

        assert statuses[200] == sum(statuses.values()), f"answers: {dict(statuses)}"
        assert manager.refreshes >= 2
        assert len(carried) == manager.refreshes + 1  # each pair in turn went out, the login's first
        assert tally.statuses("POST", "/auth/refresh") == Counter({200: manager.refreshes})
        assert manager.tokens is not None
        assert manager.tokens.session_id == sid
        generation = refresh_generation(manager.tokens.refresh_token)
        assert generation == refresh_generation(first_refresh) + manager.refreshes
        assert hooks.ended == []
        assert manager.state == "active"
        total = sum(statuses.values())
        print(f"\nrequests adapter: {total} requests, {manager.refreshes} refreshes, {retried} retried")


def test_a_token_expired_unnoticed_is_refreshed_on_the_401_and_the_request_retried_once(
    service: Cluster,
) -> None:
    """The client's clock stood still (a laptop asleep, a timer that never fired): it sends a token the
    server has seen expire. The 401 ``token_expired`` makes it refresh once and retry the request once."""
    hooks = Hooks()
    manager = TokenManager(service.server.url, clock=FrozenClock(time.time()), **hooks.kwargs())
    with contextlib.closing(manager), requests.Session() as session:
        manager.login(service.username, service.password)
        assert manager.tokens is not None
        sent = fp(manager.tokens.access_token)
        session.auth = KeyturnRequestsAuth(manager)
        until = access_exp(manager) + 0.2
        while time.time() < until:  # the client's own clock does not move: wait by the real one
            time.sleep(min(until - time.time(), 0.5))
        tally = Tally(service.server)

        response = session.get(service.server.url + "/auth/me", timeout=30)

        assert response.status_code == 200, why(response)  # type: ignore[arg-type]
        assert [r.status_code for r in response.history] == [401]
        assert response.history[0].json()["error"] == "token_expired"
        assert fp(response.history[0].request.headers["Authorization"].split()[1]) == sent
        assert fp(response.request.headers["Authorization"].split()[1]) != sent
        assert tally.statuses("POST", "/auth/refresh") == Counter({200: 1})
        assert tally.statuses("GET", "/auth/me") == Counter({401: 1, 200: 1})
        assert manager.refreshes == 1

        again = session.get(service.server.url + "/auth/me", timeout=30)  # the new token, at once
        assert again.status_code == 200
        assert again.history == []
        assert tally.count("POST", "/auth/refresh") == 1
        assert hooks.ended == []


def test_a_misconfigured_refresh_call_ends_the_session(service: Cluster, tmp_path: Path) -> None:
    """``invalid_request`` at the refresh endpoint (here: the refresh token sent under the wrong name)
    says this call can never refresh without a change: the session ends at once, the stored pair is
    cleared, and the caller is told why (the browser client does the same; docs/client.md)."""
    hooks = Hooks()
    path = tmp_path / "tokens.json"
    wrong = dataclasses.replace(KEYTURN, refresh_field="refresh")
    manager = signed_in(
        service.server.url,
        service.username,
        service.password,
        hooks,
        endpoints=wrong,
        store=FileTokenStore(path),
        max_wait=2.0,
    )
    with contextlib.closing(manager):
        wait_until_expired(manager)
        tally = Tally(service.server)

        with pytest.raises(SessionEnded) as ended:
            manager.access_token()

        assert ended.value.reason == "invalid_request"
        assert manager.state == "ended"
        assert hooks.ended == ["invalid_request"]
        assert tally.statuses("POST", "/auth/refresh") == Counter({400: 1})
        assert FileTokenStore(path).load() is None


# -- acceptance 5: a FileTokenStore hands the session to the next process ---------------------------


def test_a_file_token_store_carries_the_session_to_another_process(service: Cluster, tmp_path: Path) -> None:
    path, go = tmp_path / "state" / "tokens.json", tmp_path / "go"
    tally = Tally(service.server)

    # The second process starts first (Python starts slowly) and waits for the first to have exited.
    resumer = token_file_client("resume", service.server.url, path, "--go", str(go))
    try:
        logged_in = result_of(token_file_client("login", service.server.url, path, password=service.password))
        assert logged_in["logged_in"] is True
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        stored = FileTokenStore(path).load()
        assert stored is not None
        assert stored.session_id == logged_in["session_id"]
        go.touch()
    finally:
        resumed = result_of(resumer)

    # It started from the file: its first request carried the stored token, with no login and no refresh.
    assert resumed["state_at_start"] == "active"
    assert resumed["first"] == {"status": 200, "session_id": stored.session_id, "refreshes": 0}
    assert resumed["first_with_file_token"] is True
    # Then that token expired: it refreshed once, and the request went through with the new token.
    assert resumed["second"] == {"status": 200, "session_id": stored.session_id, "refreshes": 1}
    assert resumed["second_with_file_token"] is False
    assert tally.count("POST", "/auth/login") == 1
    assert tally.statuses("POST", "/auth/refresh") == Counter({200: 1})

    # The file now holds the rotated pair, still 0600, and that pair is the one the server holds.
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    rotated = FileTokenStore(path).load()
    assert rotated is not None
    assert rotated.session_id == stored.session_id
    assert fp(rotated.refresh_token) != fp(stored.refresh_token)
    assert refresh_generation(rotated.refresh_token) == refresh_generation(stored.refresh_token) + 1
    with service.server.client() as http:
        checked = me(http, rotated.access_token)
        assert checked.status_code == 200, why(checked)
        onward = refresh(http, rotated.refresh_token)  # the head rotates (a replay would keep its gen)
        assert onward.status_code == 200, why(onward)
        assert (
            refresh_generation(onward.json()["refresh_token"])
            == refresh_generation(rotated.refresh_token) + 1
        )


def test_two_managers_on_one_token_store_share_one_refresh(service: Cluster, tmp_path: Path) -> None:
    """Managers on one store share its lock and read it again before refreshing (docs/client.md): threads
    of both crossing an expiry make one refresh call, and the second manager takes the stored pair."""
    store = FileTokenStore(tmp_path / "tokens.json")
    hooks = Hooks(), Hooks()
    first = signed_in(service.server.url, service.username, service.password, hooks[0], store=store)
    second = TokenManager(
        service.server.url, store=store, refresh_margin=0.1, jitter=0.0, **hooks[1].kwargs()
    )
    with contextlib.closing(first), contextlib.closing(second):
        wait_until_expired(first)
        tally = Tally(service.server)
        ready = threading.Barrier(THREADS, timeout=60)

        def one(manager: TokenManager) -> int:
            with httpx.Client(base_url=service.server.url, auth=KeyturnAuth(manager), timeout=30) as http:
                ready.wait()
                return http.get("/auth/me").status_code

        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            statuses = Counter(pool.map(one, [first, second] * (THREADS // 2)))

        assert statuses == Counter({200: THREADS})
        assert tally.statuses("POST", "/auth/refresh") == Counter({200: 1})
        assert first.refreshes + second.refreshes == 1
        assert first.tokens is not None
        assert second.tokens is not None
        assert fp(first.tokens.refresh_token) == fp(second.tokens.refresh_token)
        assert hooks[0].ended == hooks[1].ended == []


# -- acceptance 6: a lost refresh answer costs nothing ----------------------------------------------


@pytest.fixture
def proxy(service: Cluster) -> Iterator[HttpFaultProxy]:
    with http_fault_proxy(service.server.url) as started:
        yield started


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_a_lost_refresh_answer_is_retried_with_the_same_token(
    service: Cluster, proxy: HttpFaultProxy, use_async: bool
) -> None:
    hooks = Hooks()
    # The manager's own calls (login, refresh) go through the proxy.
    manager = signed_in(proxy.url, service.username, service.password, hooks)
    with contextlib.closing(manager):
        lost_answer_survives(service, proxy, manager, hooks, use_async)


def lost_answer_survives(
    service: Cluster, proxy: HttpFaultProxy, manager: TokenManager, hooks: Hooks, use_async: bool
) -> None:
    assert manager.tokens is not None
    sid = manager.tokens.session_id
    login_refresh = manager.tokens.refresh_token
    tally = Tally(service.server)

    proxy.inject("drop_after", times=1, paths=REFRESH)
    wait_until_expired(manager)
    auth = KeyturnAuth(manager)
    if use_async:

        async def get() -> httpx.Response:
            try:
                async with httpx.AsyncClient(base_url=service.server.url, auth=auth, timeout=30) as http:
                    return await http.get("/auth/me")
            finally:
                await manager.aclose()

        response = asyncio.run(get())
    else:
        with httpx.Client(base_url=service.server.url, auth=auth, timeout=30) as http:
            response = http.get("/auth/me")  # the resource request goes to the service itself

    assert response.status_code == 200, why(response)
    assert response.json()["session"]["session_id"] == sid
    # Two refresh calls reached the server, both answered 200: the first answer was lost on the way back.
    assert [(path, fate) for _, path, fate in proxy.history()] == [
        ("/auth/login", "forwarded"),
        ("/auth/refresh", "drop_after"),
        ("/auth/refresh", "forwarded"),
    ]
    assert tally.statuses("POST", "/auth/refresh") == Counter({200: 2})
    # The retry carried the same refresh token: the grace period replayed the head (the pair below is the
    # first successor, not a second one), and no reuse was detected.
    assert [e for e in events(service.server, "session.reuse_detected") if e.get("sid") == sid] == []
    assert hooks.ended == []
    assert manager.state == "active"
    assert hooks.states == ["active", "degraded", "active"]  # the lost answer was reported, then mended
    assert manager.refreshes == 1
    # The pair the client ended with is the server's head: it rotates (gen + 1), it does not replay.
    assert manager.tokens is not None
    assert refresh_generation(manager.tokens.refresh_token) == refresh_generation(login_refresh) + 1
    with service.server.client() as http:
        checked = me(http, manager.tokens.access_token)
        assert checked.status_code == 200, why(checked)
        assert checked.json()["session"]["state"] == "active"
        onward = refresh(http, manager.tokens.refresh_token)
        assert onward.status_code == 200, why(onward)
        assert refresh_generation(onward.json()["refresh_token"]) == refresh_generation(login_refresh) + 2
        assert me(http, onward.json()["access_token"]).status_code == 200
