"""``KeyturnAuth``: the httpx auth flow, sync and async, against a real resource and token service.

The resource (``/resource`` on the live service) authenticates each request with the real service, so
an expired or revoked token gets Keyturn's real 401 bodies; the service answers with a canned 401, 429 or
503 on command where a test needs a specific one. What must hold, for ``httpx.Client`` and
``httpx.AsyncClient`` alike: a 401 ``token_expired`` costs one refresh and one retry; a 401 for an older
token is retried with the current one, without a refresh; ``token_revoked``/``token_invalid`` for the
current token cost one refresh and one retry, and end the session if refused again; never more than one
such retry; 429, 502, 503, 504 and (through ``KeyturnTransport``) dropped connections are retried for
idempotent methods only, or requests marked safe, with backoff, ``Retry-After`` first.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from keyturn.client import AsyncKeyturnTransport, KeyturnAuth, KeyturnTransport, SessionEnded, TokenManager

from ._client_live import (
    AsyncFaultyTransport,
    Canned,
    FaultyTransport,
    Harness,
    LiveService,
    MaxRandom,
    MinRandom,
)

pytestmark = pytest.mark.anyio

MODES = ["sync", "async"]
RESOURCE = "/resource"


@pytest.fixture
async def h(service: LiveService, anyio_backend: str) -> AsyncIterator[Harness]:
    harness = Harness.on(service)
    yield harness
    await harness.aclose()


def _manager(h: Harness, mode: str, **kwargs: Any) -> TokenManager:
    return h.manager(asynchronous=mode == "async", **kwargs)


async def _send(
    h: Harness,
    mode: str,
    manager: TokenManager,
    method: str = "GET",
    *,
    keyturn_transport: bool = False,
    safe: bool = False,
    **auth: Any,
) -> httpx.Response:
    """One request through ``KeyturnAuth`` with an httpx client of ``mode``, through ``h.faults``
    (wrapped in ``KeyturnTransport`` if asked; sent with ``auth.safe_to_retry()`` if ``safe``)."""
    auth.setdefault("rng", MinRandom())
    flow = KeyturnAuth(manager, **auth)
    chosen = flow.safe_to_retry() if safe else flow
    if mode == "sync":
        transport: httpx.BaseTransport = FaultyTransport(h.faults)
        if keyturn_transport:
            transport = KeyturnTransport(transport)

        def blocking() -> httpx.Response:
            with httpx.Client(base_url=h.live.url, auth=flow, transport=transport, timeout=30) as http:
                return http.request(method, RESOURCE, auth=chosen)

        return await anyio.to_thread.run_sync(blocking)
    atransport: httpx.AsyncBaseTransport = AsyncFaultyTransport(h.faults)
    if keyturn_transport:
        atransport = AsyncKeyturnTransport(atransport)
    async with httpx.AsyncClient(base_url=h.live.url, auth=flow, transport=atransport, timeout=30) as ahttp:
        return await ahttp.request(method, RESOURCE, auth=chosen)


def _sent(h: Harness, method: str = "GET") -> list[str | None]:
    return h.live.ctl.tokens_sent(method, RESOURCE)


@pytest.mark.parametrize("mode", MODES)
async def test_the_current_token_is_sent(h: Harness, mode: str) -> None:
    manager = _manager(h, mode)
    pair = h.login(manager)

    response = await _send(h, mode, manager)

    assert response.status_code == 200
    assert response.json() == {"subject": "alice", "method": "GET"}
    sent_the_current_token = _sent(h) == [pair.access_token]
    assert sent_the_current_token


@pytest.mark.parametrize("mode", MODES)
async def test_token_expired_costs_one_refresh_and_one_retry(h: Harness, mode: str) -> None:
    """The service's clock ran ahead of the client's schedule: the resource says ``token_expired``."""
    manager = _manager(h, mode)
    old = h.login(manager)
    h.live.clock.advance(1000)

    response = await _send(h, mode, manager)

    assert response.status_code == 200
    assert h.live.refreshes() == 1
    assert manager.tokens is not None
    first_old_then_new = _sent(h) == [old.access_token, manager.tokens.access_token]
    assert first_old_then_new
    assert manager.state == "active"


@pytest.mark.parametrize("mode", MODES)
async def test_a_401_for_an_older_token_is_retried_with_the_current_one(h: Harness, mode: str) -> None:
    """Another request refreshed while this one was in flight with the old token: no second refresh,
    just the same request again with the token everyone now uses."""
    manager = _manager(h, mode)
    old = h.login(manager)
    h.live.ctl.answer("GET", RESOURCE, Canned.error(401, "token_expired"))
    refreshed: list[str] = []

    def refresh_meanwhile(request: httpx.Request) -> None:
        if request.url.path == RESOURCE and not refreshed:
            refreshed.append(manager.replace_rejected(old.access_token))

    h.faults.before_send = refresh_meanwhile

    response = await _send(h, mode, manager)

    assert response.status_code == 200
    assert h.live.refreshes() == 1
    old_then_current = _sent(h) == [old.access_token, refreshed[0]]
    assert old_then_current


@pytest.mark.parametrize("mode", MODES)
async def test_never_more_than_one_retry_for_a_401(h: Harness, mode: str) -> None:
    """A resource that keeps answering ``token_expired`` (its clock is broken) must not make the client
    refresh in a loop."""
    manager = _manager(h, mode)
    h.login(manager)
    h.live.ctl.answer("GET", RESOURCE, *[Canned.error(401, "token_expired")] * 5)

    response = await _send(h, mode, manager)

    assert response.status_code == 401
    assert response.json()["error"] == "token_expired"
    assert h.live.ctl.count("GET", RESOURCE) == 2
    assert h.live.refreshes() == 1
    assert h.ended == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_401_with_only_a_challenge_header_is_understood(h: Harness, mode: str) -> None:
    """Some resource servers (or proxies in front of them) send the RFC 6750 challenge and no body."""
    manager = _manager(h, mode)
    h.login(manager)
    challenge = 'Bearer realm="api", error="invalid_token", error_description="token_expired: expired"'
    h.live.ctl.answer("GET", RESOURCE, Canned(401, b"", (("WWW-Authenticate", challenge),)))

    response = await _send(h, mode, manager)

    assert response.status_code == 200
    assert h.live.refreshes() == 1


@pytest.mark.parametrize("mode", MODES)
async def test_token_revoked_costs_one_refresh_which_ends_the_session(h: Harness, mode: str) -> None:
    """The user logged out elsewhere (here: the service revoked the session). A 401 ``token_revoked`` gets
    one refresh first, which tells whether the session lives: the service says ``session_revoked``, so the
    session is over, and the next request is refused before it is sent."""
    manager = _manager(h, mode)
    pair = h.login(manager)
    h.live.raw("POST", "/auth/logout", headers={"Authorization": f"Bearer {pair.access_token}"})

    with pytest.raises(SessionEnded) as ended:
        await _send(h, mode, manager)

    assert ended.value.reason == "session_revoked"
    assert h.ended == ["session_revoked"]
    assert manager.store.load() is None
    assert h.live.refreshes() == 1
    hits = h.live.ctl.count("GET", RESOURCE)
    assert hits == 1
    with pytest.raises(SessionEnded):
        await _send(h, mode, manager)
    assert h.live.ctl.count("GET", RESOURCE) == hits
    assert h.ended == ["session_revoked"]


@pytest.mark.parametrize("mode", MODES)
async def test_token_invalid_once_costs_one_refresh_and_one_retry(h: Harness, mode: str) -> None:
    """A tampered or otherwise refused current token: one refresh, one retry, and the session goes on."""
    manager = _manager(h, mode)
    old = h.login(manager)
    h.live.ctl.answer("GET", RESOURCE, Canned.error(401, "token_invalid"))

    response = await _send(h, mode, manager)

    assert response.status_code == 200
    assert h.live.refreshes() == 1
    assert manager.tokens is not None
    old_then_new = _sent(h) == [old.access_token, manager.tokens.access_token]
    assert old_then_new
    assert h.ended == []


@pytest.mark.parametrize("mode", MODES)
async def test_token_invalid_again_after_the_refresh_ends_the_session(h: Harness, mode: str) -> None:
    manager = _manager(h, mode)
    h.login(manager)
    h.live.ctl.answer("GET", RESOURCE, Canned.error(401, "token_invalid"), Canned.error(401, "token_invalid"))

    response = await _send(h, mode, manager)

    assert response.status_code == 401
    assert h.live.refreshes() == 1
    assert h.live.ctl.count("GET", RESOURCE) == 2
    assert h.ended == ["token_invalid"]


@pytest.mark.parametrize("mode", MODES)
async def test_another_401_is_handed_to_the_application_and_the_session_goes_on(
    h: Harness, mode: str
) -> None:
    manager = _manager(h, mode)
    pair = h.login(manager)
    h.live.ctl.answer("GET", RESOURCE, Canned.error(401, "invalid_credentials"))

    response = await _send(h, mode, manager)

    assert response.status_code == 401
    assert h.ended == []
    assert h.live.refreshes() == 0
    assert (await _send(h, mode, manager)).status_code == 200
    assert manager.access_token() == pair.access_token


@pytest.mark.parametrize("mode", MODES)
async def test_a_refresh_refused_for_good_during_a_retry_ends_the_session(h: Harness, mode: str) -> None:
    manager = _manager(h, mode)
    h.login(manager)
    h.live.ctl.answer("GET", RESOURCE, Canned.error(401, "token_expired"))
    h.live.ctl.answer("POST", "/auth/refresh", Canned.error(401, "session_revoked"))

    with pytest.raises(SessionEnded) as ended:
        await _send(h, mode, manager)

    assert ended.value.reason == "session_revoked"
    assert h.ended == ["session_revoked"]
    assert h.live.ctl.count("GET", RESOURCE) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_503_on_get_is_retried_up_to_retries_with_growing_backoff(h: Harness, mode: str) -> None:
    manager = _manager(h, mode)
    h.login(manager)
    h.live.ctl.answer("GET", RESOURCE, *[Canned.error(503, "server_error")] * 5)

    started = time.monotonic()
    response = await _send(h, mode, manager, retries=2, rng=MaxRandom())
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert h.live.ctl.count("GET", RESOURCE) == 3
    assert elapsed >= 0.5 + 1.0  # MaxRandom: each backoff at its ceiling
    assert h.ended == []


@pytest.mark.parametrize("mode", MODES)
async def test_429_on_get_waits_retry_after_then_succeeds(h: Harness, mode: str) -> None:
    """``Retry-After`` wins over the backoff (which MinRandom makes zero here)."""
    manager = _manager(h, mode)
    h.login(manager)
    h.live.ctl.answer("GET", RESOURCE, Canned.error(429, "rate_limited", retry_after="1"))

    started = time.monotonic()
    response = await _send(h, mode, manager)

    assert response.status_code == 200
    assert time.monotonic() - started >= 1.0
    assert h.live.ctl.count("GET", RESOURCE) == 2


@pytest.mark.parametrize("mode", MODES)
async def test_post_is_not_retried_unless_the_application_opts_in(h: Harness, mode: str) -> None:
    """A POST that got a 503 may have been carried out; repeating it could pay an order twice."""
    manager = _manager(h, mode)
    h.login(manager)
    h.live.ctl.answer("POST", RESOURCE, Canned.error(503, "server_error"))

    response = await _send(h, mode, manager, "POST")

    assert response.status_code == 503
    assert h.live.ctl.count("POST", RESOURCE) == 1

    h.live.ctl.answer("POST", RESOURCE, Canned.error(503, "server_error"))
    response = await _send(h, mode, manager, "POST", retry_unsafe=True)

    assert response.status_code == 200
    assert h.live.ctl.count("POST", RESOURCE) == 3


@pytest.mark.parametrize("mode", MODES)
async def test_put_and_delete_are_idempotent_and_retried(h: Harness, mode: str) -> None:
    manager = _manager(h, mode)
    h.login(manager)
    for method in ("PUT", "DELETE"):
        h.live.ctl.answer(method, RESOURCE, Canned.error(503, "server_error"))
        response = await _send(h, mode, manager, method)
        assert response.status_code == 405  # the real route answers after the retry
        assert h.live.ctl.count(method, RESOURCE) == 2


@pytest.mark.parametrize("mode", MODES)
async def test_a_401_on_post_is_still_retried_once_with_a_new_token(h: Harness, mode: str) -> None:
    """A 401 means the request was refused before anything was done: safe to repeat, whatever the
    method."""
    manager = _manager(h, mode)
    h.login(manager)
    h.live.clock.advance(1000)

    response = await _send(h, mode, manager, "POST")

    assert response.status_code == 200
    assert h.live.ctl.count("POST", RESOURCE) == 2
    assert h.live.refreshes() == 1


# -- dropped connections (issue 20) -------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_get_is_retried_through_refused_and_dropped_connections(h: Harness, mode: str) -> None:
    """With ``KeyturnTransport`` a connection that failed, timed out, or dropped after the server answered
    is an answer the flow judges: an idempotent request is sent again, and the caller sees the 200."""
    manager = _manager(h, mode)
    h.login(manager)
    h.faults.plan(RESOURCE, "connect", "timeout", "lost")

    response = await _send(h, mode, manager, keyturn_transport=True)

    assert response.status_code == 200
    assert h.faults.count(RESOURCE) == 4
    assert h.live.ctl.count("GET", RESOURCE) == 2  # the lost one reached the server, then this one
    assert h.ended == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_dropped_post_is_not_sent_again_unless_marked_safe(h: Harness, mode: str) -> None:
    """The server handled the POST but the answer was lost: the caller gets the error, and decides; with
    ``auth.safe_to_retry()`` the flow sends it again itself."""
    manager = _manager(h, mode)
    h.login(manager)
    h.faults.plan(RESOURCE, "lost")

    with pytest.raises(httpx.ReadError):
        await _send(h, mode, manager, "POST", keyturn_transport=True)
    assert h.live.ctl.count("POST", RESOURCE) == 1

    h.faults.plan(RESOURCE, "lost")
    response = await _send(h, mode, manager, "POST", keyturn_transport=True, safe=True)
    assert response.status_code == 200
    assert h.live.ctl.count("POST", RESOURCE) == 3


@pytest.mark.parametrize("mode", MODES)
async def test_dropped_connections_are_retried_within_the_callers_bound(h: Harness, mode: str) -> None:
    """``retries=2``: three tries, then the last connection error is the caller's."""
    manager = _manager(h, mode)
    h.login(manager)
    h.faults.plan(RESOURCE, "connect", "connect", "connect", "connect")

    with pytest.raises(httpx.ConnectError):
        await _send(h, mode, manager, keyturn_transport=True, retries=2)
    assert h.faults.count(RESOURCE) == 3


@pytest.mark.parametrize("mode", MODES)
async def test_without_keyturn_transport_a_dropped_connection_is_httpxs_error(h: Harness, mode: str) -> None:
    manager = _manager(h, mode)
    h.login(manager)
    h.faults.plan(RESOURCE, "connect")

    with pytest.raises(httpx.ConnectError):
        await _send(h, mode, manager)
    assert h.faults.count(RESOURCE) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_a_session_the_client_gives_up_is_ended_on_the_server_too(h: Harness, mode: str) -> None:
    """Issue 19: the token a refresh brought is refused again, so the client ends the session; it tells the
    service with one logout (by the refresh token), after the application has heard, and the session's
    tokens are refused there from then on."""
    heard_before_logout: list[int] = []
    manager = _manager(h, mode)
    manager.on_session_ended = lambda _: heard_before_logout.append(h.live.ctl.count("POST", "/auth/logout"))
    pair = h.login(manager)
    h.live.ctl.answer("GET", RESOURCE, Canned.error(401, "token_invalid"), Canned.error(401, "token_invalid"))

    response = await _send(h, mode, manager)

    assert response.status_code == 401
    assert heard_before_logout == [0]
    assert h.live.ctl.count("POST", "/auth/logout") == 1
    again = h.live.raw("POST", "/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert (again.status_code, again.json()["error"]) == (401, "session_revoked")


@pytest.mark.parametrize("mode", MODES)
async def test_a_session_the_refresh_endpoint_ended_is_not_logged_out_again(h: Harness, mode: str) -> None:
    """Where the refresh endpoint said the session is over, there is nothing to tell the service."""
    manager = _manager(h, mode)
    pair = h.login(manager)
    h.live.raw("POST", "/auth/logout", headers={"Authorization": f"Bearer {pair.access_token}"})

    with pytest.raises(SessionEnded):
        await _send(h, mode, manager)

    assert h.live.ctl.count("POST", "/auth/logout") == 1  # the test's own


async def test_ending_a_session_tells_the_service_once_and_a_failure_is_ignored(h: Harness) -> None:
    """``TokenManager.end``: the application gives up; one logout, and an unreachable service changes
    nothing (the session ends here all the same)."""
    manager = h.manager()
    pair = h.login(manager)
    manager.end("token_invalid")
    manager.end("token_invalid")
    assert h.live.ctl.count("POST", "/auth/logout") == 1
    assert h.ended == ["token_invalid"]
    again = h.live.raw("POST", "/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert again.json()["error"] == "session_revoked"

    other = h.manager()
    h.login(other)
    h.live.ctl.answer("POST", "/auth/logout", Canned.error(503, "server_error"))
    other.end("token_revoked")
    assert other.state == "ended"
    assert h.live.ctl.count("POST", "/auth/logout") == 2
