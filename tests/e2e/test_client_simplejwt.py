"""Issue 5, acceptance 3: the Python client keeps a session alive against djangorestframework-simplejwt.

A real Django + SimpleJWT server (``apps/simplejwt_server.py``) rotates refresh tokens and blacklists the
used ones, with no grace period; its access tokens live 3 s (its timestamps are whole seconds, so 1 s
would be unreliable). ``TokenManager(url, endpoints=SIMPLEJWT)`` logs in at ``POST /api/token/`` and
refreshes at ``POST /api/token/refresh/``; the server counts how it answered the refreshes.

Durations are read on the test's own clock, never on the client's estimate of the server's: that estimate
is remade from every pair (``iat`` at the midpoint of the call), and after a login slowed by password
hashing on a busy machine it can be seconds off until the first refresh.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from keyturn.client import SIMPLEJWT, KeyturnAuth, SessionEnded, TokenManager

from ._client import Hooks, wait_until_expired
from ._http import fp
from ._simplejwt import SimpleJWTServer, simplejwt_server

ACCESS = 3
LIFETIMES = 4
SHORTEST_MARGIN = ACCESS / 3 * 1.1
"""The client's refresh margin at its largest: ``min(refresh_margin, lifetime / 3)`` and 10 % jitter."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleJWTServer]:
    with simplejwt_server(tmp_path_factory.mktemp("simplejwt-client"), access_lifetime=ACCESS) as started:
        yield started


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before[key] for key in after}


def test_a_session_lives_across_rotations_with_blacklisting(server: SimpleJWTServer) -> None:
    hooks = Hooks()
    manager = TokenManager(server.url, endpoints=SIMPLEJWT, **hooks.kwargs())  # the default margin
    with (
        contextlib.closing(manager),
        httpx.Client(base_url=server.url, auth=KeyturnAuth(manager), timeout=30) as http,
    ):
        tokens = manager.login(server.username, server.password)
        first_refresh = tokens.refresh_token
        # The first request carries the login's pair, or its successor: SimpleJWT's login stamps the
        # access token's exp when it makes the refresh token and its iat after storing it, so on a busy
        # machine the pair can arrive already due (seen: exp == iat), and the client refreshes at once.
        first = http.get("/api/me/")
        assert first.status_code == 200, first.status_code
        before, refreshed_before = server.stats(), manager.refreshes
        carried = {fp(first.request.headers["authorization"])}

        statuses: Counter[int] = Counter()
        started = time.monotonic()
        while time.monotonic() - started < LIFETIMES * ACCESS:
            response = http.get("/api/me/")
            statuses[response.status_code] += 1
            if response.status_code == 200:
                assert response.json() == {"username": server.username}
                carried.add(fp(response.request.headers["authorization"]))
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        counts = delta(before, server.stats())

    assert statuses[200] == sum(statuses.values()), f"answers: {dict(statuses)}"
    assert counts["refresh_401"] == 0
    assert counts["refresh_other"] == 0
    refreshes = counts["refresh_200"]
    expiries = elapsed / ACCESS
    print(f"\nSimpleJWT: {elapsed:.1f}s, {sum(statuses.values())} requests, {refreshes} refreshes")
    # About one refresh per access token: every token was replaced before or at its expiry (the session
    # lived), and no more often than the refresh margin makes it: a third of the lifetime plus up to 10 %
    # jitter, so a pair is refreshed at the soonest ACCESS - 1.1 * ACCESS / 3 seconds after the last.
    assert expiries - 1 <= refreshes <= elapsed / (ACCESS - SHORTEST_MARGIN) + 1
    assert refreshes == manager.refreshes - refreshed_before
    assert len(carried) == refreshes + 1  # every pair in turn went out, the first request's first
    assert manager.tokens is not None
    assert fp(manager.tokens.refresh_token) != fp(first_refresh)
    assert hooks.ended == []
    assert manager.state == "active"


def test_a_stolen_refresh_token_ends_the_session_with_token_not_valid(server: SimpleJWTServer) -> None:
    hooks = Hooks()
    manager = TokenManager(server.url, endpoints=SIMPLEJWT, **hooks.kwargs())
    with (
        contextlib.closing(manager),
        httpx.Client(base_url=server.url, auth=KeyturnAuth(manager), timeout=30) as http,
        server.client() as attacker,
    ):
        manager.login(server.username, server.password)
        assert http.get("/api/me/").status_code == 200  # after a refresh if the login's pair came due
        assert manager.tokens is not None
        before, refreshed_before = server.stats(), manager.refreshes

        # The thief refreshes first: SimpleJWT rotates and blacklists the token the client still holds.
        taken = attacker.post("/api/token/refresh/", json={"refresh": manager.tokens.refresh_token})
        assert taken.status_code == 200, taken.status_code

        wait_until_expired(manager)
        with pytest.raises(SessionEnded) as ended:
            http.get("/api/me/")
        assert ended.value.reason == "token_not_valid"
        assert hooks.ended == ["token_not_valid"]
        assert manager.state == "ended"
        assert manager.tokens is None
        assert manager.store.load() is None

        for _ in range(3):  # over, here: no call leaves, no loop
            with pytest.raises(SessionEnded):
                http.get("/api/me/")
        with pytest.raises(SessionEnded):
            manager.access_token()
        counts = delta(before, server.stats())

    assert counts == {"refresh_200": 1, "refresh_401": 1, "refresh_other": 0}  # the thief's, the client's
    assert hooks.ended == ["token_not_valid"]
    assert manager.refreshes == refreshed_before
