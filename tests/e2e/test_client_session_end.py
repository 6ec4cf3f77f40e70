"""Issue 5, acceptance 2: what ends a client's session ends it once, clears it, and never loops.

Against a real ``keyturn serve`` (4 s access tokens, ``KEYTURN_LEEWAY=0``, a 1 s grace period) that logs
every request:

- a refresh token stolen and used by an attacker: once the grace period is over, the legitimate client's
  next refresh is answered ``refresh_token_reused``; the session ends with that reason (one
  ``on_session_ended`` call, however many threads were waiting), the token file is removed, and every
  later call raises ``SessionEnded`` without a request to the server; the thief's refresh token is dead too;
- a session revoked on the server (``POST /auth/logout-all`` by another client, or ``keyturn sessions
  revoke``) ends with ``session_revoked`` at the client's next refresh (sync and async);
- a resource request answered 401 ``token_revoked`` (the token service's ``GET /auth/me`` for a revoked
  session's still valid access token) costs one refresh, whose ``session_revoked`` ends it (against a
  second service whose access tokens live 5 minutes: the token must still be valid, and not yet due, at
  the end of a scenario that a busy machine can stretch past 4 s);
- and what must not end it: two runs of a program on one token file, one refreshing after the other.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from keyturn.client import FileTokenStore, KeyturnAuth, SessionEnded, TokenManager

from ._client import (
    Hooks,
    Tally,
    events,
    refresh_generation,
    result_of,
    signed_in,
    token_file_client,
    wait_until_expired,
)
from ._http import assert_error, bearer, login, me, refresh, why
from ._server import Cluster, cluster, run_cli

GRACE = 1.0
THREADS = 20
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data = tmp_path_factory.mktemp("session-end") / "data"
    env = {"KEYTURN_ACCESS_TOKEN_LIFETIME": "4", "KEYTURN_LEEWAY": "0", "KEYTURN_GRACE_PERIOD": str(GRACE)}
    with cluster(data, 1, env, "--access-log", "--log-level", "info") as group:
        yield group


@pytest.fixture(scope="module")
def lasting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Like ``service``, with access tokens that outlive any scenario here (5 minutes)."""
    data = tmp_path_factory.mktemp("session-end-lasting") / "data"
    env = {"KEYTURN_ACCESS_TOKEN_LIFETIME": "300", "KEYTURN_LEEWAY": "0", "KEYTURN_GRACE_PERIOD": str(GRACE)}
    with cluster(data, 1, env, "--access-log", "--log-level", "info") as group:
        yield group


def assert_ended_for_good(manager: TokenManager, hooks: Hooks, reason: str, tally: Tally, url: str) -> None:
    """The session is over for ``reason``: reported once, nothing kept, and every later call fails here,
    before any request leaves."""
    assert hooks.ended == [reason]
    assert hooks.states[-1] == "ended"
    assert manager.state == "ended"
    assert manager.tokens is None
    assert manager.store.load() is None
    sent_before = len(tally.since())

    with httpx.Client(base_url=url, auth=KeyturnAuth(manager), timeout=30) as http:
        for _ in range(3):
            with pytest.raises(SessionEnded) as again:
                http.get("/auth/me")
            assert again.value.reason == reason
    with pytest.raises(SessionEnded):
        manager.access_token()
    with pytest.raises(SessionEnded):
        manager.replace_rejected("anything")

    async def from_a_loop() -> None:
        try:
            async with httpx.AsyncClient(base_url=url, auth=KeyturnAuth(manager), timeout=30) as http:
                with pytest.raises(SessionEnded):
                    await http.get("/auth/me")
                with pytest.raises(SessionEnded):
                    await manager.aaccess_token()
        finally:
            await manager.aclose()

    asyncio.run(from_a_loop())

    assert len(tally.since()) == sent_before, "a call after the end reached the server"
    assert hooks.ended == [reason]  # still once
    assert manager.refreshes == 0


def test_a_stolen_refresh_token_used_by_an_attacker_ends_the_session_once(
    service: Cluster, tmp_path: Path
) -> None:
    hooks = Hooks()
    path = tmp_path / "tokens.json"
    manager = signed_in(
        service.server.url, service.username, service.password, hooks, store=FileTokenStore(path)
    )
    with contextlib.closing(manager), service.server.client() as attacker:
        assert manager.tokens is not None
        taken = refresh(attacker, manager.tokens.refresh_token)  # the thief uses it first
        assert taken.status_code == 200, why(taken)
        stolen_at = time.monotonic()
        loot = taken.json()

        # The legitimate client's token expires after the grace period is over (4 s against 1 s).
        wait_until_expired(manager)
        assert time.monotonic() - stolen_at > GRACE
        tally = Tally(service.server)

        # A crowd of threads meets the expiry: one refresh goes out, it is refused, and everyone is told.
        ready = threading.Barrier(THREADS, timeout=TIMEOUT)

        def one() -> str:
            with httpx.Client(base_url=service.server.url, auth=KeyturnAuth(manager), timeout=30) as http:
                ready.wait()
                try:
                    response = http.get("/auth/me")
                except SessionEnded as ended:
                    return ended.reason
                return f"answered {response.status_code}"

        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            reasons = list(pool.map(lambda _: one(), range(THREADS)))

        assert Counter(reasons) == Counter({"refresh_token_reused": THREADS})
        assert tally.statuses("POST", "/auth/refresh") == Counter({401: 1})
        assert tally.count("GET", "/auth/me") == 0
        assert not path.exists()
        assert_ended_for_good(manager, hooks, "refresh_token_reused", tally, service.server.url)

        # Reuse revoked the whole session: the thief's refresh token stopped working too.
        assert_error(refresh(attacker, loot["refresh_token"]), 401, "session_revoked")


def end_by_logout_all(service: Cluster, sid: str) -> None:
    """Another client of the same user logs out everywhere."""
    with service.server.client() as other:
        tokens = login(other, service.username, service.password)
        answer = other.post("/auth/logout-all", json={"refresh_token": tokens["refresh_token"]})
        assert answer.status_code == 200, why(answer)
        assert sid in answer.json()["revoked_sessions"]


def end_by_cli(service: Cluster, sid: str) -> None:
    """An operator runs ``keyturn sessions revoke SID``."""
    revoked = run_cli(service.data_dir, "sessions", "revoke", sid)
    assert revoked.returncode == 0, revoked.stderr
    assert sid in revoked.stdout


@pytest.mark.parametrize(
    ("revoke", "use_async"),
    [(end_by_logout_all, False), (end_by_cli, True)],
    ids=["logout-all-sync", "cli-revoke-async"],
)
def test_a_session_revoked_on_the_server_ends_at_the_next_refresh(
    service: Cluster, revoke: Callable[[Cluster, str], None], use_async: bool
) -> None:
    hooks = Hooks()
    manager = signed_in(service.server.url, service.username, service.password, hooks)
    with contextlib.closing(manager):
        assert manager.tokens is not None
        assert manager.tokens.session_id is not None
        revoke(service, manager.tokens.session_id)
        wait_until_expired(manager)
        tally = Tally(service.server)

        if use_async:

            async def next_request() -> None:
                try:
                    async with httpx.AsyncClient(
                        base_url=service.server.url, auth=KeyturnAuth(manager), timeout=30
                    ) as http:
                        await http.get("/auth/me")
                finally:
                    await manager.aclose()

            with pytest.raises(SessionEnded) as ended:
                asyncio.run(next_request())
        else:
            with (
                httpx.Client(base_url=service.server.url, auth=KeyturnAuth(manager), timeout=30) as http,
                pytest.raises(SessionEnded) as ended,
            ):
                http.get("/auth/me")

        assert ended.value.reason == "session_revoked"
        assert tally.statuses("POST", "/auth/refresh") == Counter({401: 1})
        assert tally.count("GET", "/auth/me") == 0
        assert_ended_for_good(manager, hooks, "session_revoked", tally, service.server.url)


def test_a_resource_answering_token_revoked_ends_the_session(lasting: Cluster) -> None:
    with lasting.server.client() as other:
        # Another client of the same user, signed in first, will end this session from its own.
        theirs = login(other, lasting.username, lasting.password)
        hooks = Hooks()
        manager = signed_in(lasting.server.url, lasting.username, lasting.password, hooks)
        with (
            contextlib.closing(manager),
            httpx.Client(base_url=lasting.server.url, auth=KeyturnAuth(manager), timeout=30) as http,
        ):
            assert manager.tokens is not None
            sid = manager.tokens.session_id
            # A login slowed by password hashing makes the client's clock offset (taken at the call's
            # midpoint) run ahead by up to half its time: with 4 s tokens the first request below could
            # find the token due and refresh first, before the session is revoked.
            tally = Tally(lasting.server)
            assert http.get("/auth/me").status_code == 200

            ended = other.delete(f"/auth/sessions/{sid}", headers=bearer(theirs["refresh_token"]))
            assert ended.status_code == 200, why(ended)
            assert manager.tokens is not None
            assert manager.server_now() < manager.tokens.access_expires_at - 1, "too slow: the token expired"

            with pytest.raises(SessionEnded) as told:
                http.get("/auth/me")  # the access token is still valid, its session is not

            # One refresh tells whether the session lives: it does not, and the request is not retried.
            assert told.value.reason == "session_revoked"
            assert tally.statuses("GET", "/auth/me") == Counter({200: 1, 401: 1})
            assert tally.statuses("POST", "/auth/refresh") == Counter({401: 1})
            assert_ended_for_good(manager, hooks, "session_revoked", tally, lasting.server.url)

        # The other session lives on.
        assert me(other, theirs["access_token"]).status_code == 200


def wait_for_file(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        assert process.poll() is None, "the held run exited early"
        assert time.monotonic() < deadline, "the held run never loaded the token file"
        time.sleep(0.05)


def test_two_runs_on_one_token_file_do_not_present_a_rotated_refresh_token(
    service: Cluster, tmp_path: Path
) -> None:
    """Two runs of a program share one token file: the first refreshes, and later the second, which
    loaded the pair before that, needs a token. It must take the stored pair (DESIGN section 6: "after
    taking the lock, re-read the stored pair"; docs/client.md: two runs on one ``FileTokenStore`` "do not
    present a refresh token the other has already rotated"): past the grace period, presenting the rotated
    one is reuse, and the service ends the user's session everywhere."""
    path, loaded, go = tmp_path / "tokens.json", tmp_path / "loaded", tmp_path / "go"
    logged_in = result_of(token_file_client("login", service.server.url, path, password=service.password))
    held = token_file_client(
        "hold", service.server.url, path, "--loaded", str(loaded), "--go", str(go)
    )  # the second run: it reads the file now, and calls later
    try:
        wait_for_file(loaded, held)
        tally = Tally(service.server)
        first = result_of(token_file_client("resume", service.server.url, path))  # refreshes once
        assert first["second"] == {"status": 200, "session_id": logged_in["session_id"], "refreshes": 1}
        time.sleep(GRACE + 0.5)  # wait out the grace period
        go.touch()
    finally:
        second = result_of(held)

    assert "ended" not in second, f"the second run's session ended: {second.get('ended')}"
    assert second["status"] == 200
    assert second["session_id"] == logged_in["session_id"]
    # Every refresh call was a rotation of the current head (the second run refreshed only if the pair it
    # found in the file was itself due): the file's generation counts them all, and none was reuse.
    calls = tally.statuses("POST", "/auth/refresh")
    assert calls == Counter({200: 1 + second["refreshes"]})
    stored = FileTokenStore(path).load()
    assert stored is not None
    assert refresh_generation(stored.refresh_token) == calls[200]
    assert reuse_events(service, logged_in["session_id"]) == 0
    with service.server.client() as http:  # the session lives on from the stored pair, the head
        onward = refresh(http, stored.refresh_token)
        assert onward.status_code == 200, why(onward)
        assert refresh_generation(onward.json()["refresh_token"]) == calls[200] + 1


def reuse_events(service: Cluster, sid: str) -> int:
    return sum(e.get("sid") == sid for e in events(service.server, "session.reuse_detected"))
