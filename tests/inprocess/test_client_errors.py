"""Temporary failures of the refresh never end a session; they are retried with backoff (DESIGN section 6).

Logging a user out because of a network blip is the failure Keyturn exists to prevent. A connection
error, a timeout, a 5xx, a 429, a body that cannot be read, a 404 from a misconfigured URL: the client
keeps its pair, keeps using a still-valid access token, reports ``degraded``, retries with exponential
backoff and full jitter (``Retry-After`` wins), and gives up on a request (``RefreshUnavailable``) only
when the access token is unusable and ``max_wait`` has run out. The service is the real one; faults are
injected on the client's transport or answered by the service on command.
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from keyturn.client import Endpoints, SessionEnded, TokenManager
from keyturn.clock import FrozenClock

from ._client_live import Canned, Fault, Harness, MinRandom

REFRESH = "/auth/refresh"


def _recover(manager: TokenManager, timeout: float = 10.0) -> str:
    """Call as an application would until the manager is active again; the token it ends with."""
    clock = manager.clock
    assert isinstance(clock, FrozenClock)
    deadline = time.monotonic() + timeout
    token = manager.access_token()
    while manager.state != "active" and time.monotonic() < deadline:
        clock.advance(0.25)  # the client's own clock: its backoff (or Retry-After) runs out
        token = manager.access_token()
    assert manager.state == "active", "the manager did not recover"
    return token


def _no_token_in(text: str, *tokens: str) -> bool:
    pieces = [piece for token in tokens for piece in token.split(".") if len(piece) > 8]
    return not any(piece in text for piece in pieces)


CLIENT_FAULTS: list[Fault] = ["connect", "timeout"]

SERVER_FAULTS = {
    "500": Canned.error(500, "server_error"),
    "503": Canned.error(503, "server_error"),
    "429-retry-after": Canned.error(429, "rate_limited", retry_after="1"),
    "502-html-from-a-proxy": Canned(502, b"<html>Bad Gateway</html>", (("Content-Type", "text/html"),)),
    "200-not-json": Canned(200, b"<html>maintenance</html>", (("Content-Type", "text/html"),)),
    "200-json-without-tokens": Canned(200, b'{"status": "ok"}', (("Content-Type", "application/json"),)),
    "200-truncated-json": Canned(200, b'{"access_token": "eyJ', (("Content-Type", "application/json"),)),
    "401-unknown-code": Canned.error(401, "something_new"),
}


def _check_temporary(h: Harness, manager: TokenManager, caplog: pytest.LogCaptureFixture) -> None:
    old = manager.tokens
    assert old is not None
    h.advance(700)  # due; the access token stays valid for another 200 s

    with caplog.at_level(logging.DEBUG, logger="keyturn.client"):
        token = manager.access_token()

    assert token == old.access_token, "the still-valid token was not used"
    assert manager.state == "degraded"
    assert h.states[-1] == "degraded"
    assert h.ended == []
    stored = manager.store.load()
    assert stored is not None
    kept_the_pair = stored.refresh_token == old.refresh_token
    assert kept_the_pair
    assert _no_token_in(caplog.text, old.access_token, old.refresh_token)

    new = _recover(manager)
    assert new != old.access_token
    assert h.states[-1] == "active"
    assert h.ended == []


@pytest.mark.parametrize("fault", CLIENT_FAULTS)
def test_a_network_failure_of_the_refresh_is_temporary(
    h: Harness, fault: Fault, caplog: pytest.LogCaptureFixture
) -> None:
    manager = h.manager(rng=MinRandom())
    h.login(manager)
    h.faults.plan(REFRESH, fault)
    _check_temporary(h, manager, caplog)
    assert h.faults.count(REFRESH) == 2


@pytest.mark.parametrize("answer", list(SERVER_FAULTS.values()), ids=list(SERVER_FAULTS))
def test_an_unhelpful_answer_to_the_refresh_is_temporary(
    h: Harness, answer: Canned, caplog: pytest.LogCaptureFixture
) -> None:
    manager = h.manager(rng=MinRandom())
    h.login(manager)
    h.live.ctl.answer("POST", REFRESH, answer)
    _check_temporary(h, manager, caplog)
    assert h.live.refreshes() == 2


def test_a_body_that_does_not_decode_is_temporary(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """A 200 whose gzip body is garbage (a broken proxy, a truncated stream) is as temporary as any other
    unreadable answer; httpx reports it as a ``DecodingError``, which is not a ``TransportError``, and
    letting it escape would fail the application's request although its access token is still valid."""
    manager = h.manager(rng=MinRandom())
    h.login(manager)
    garbled = Canned(200, b"\x1f\x8bthis is not gzip", (("Content-Type", "application/json"),))
    h.live.ctl.answer(
        "POST", REFRESH, Canned(200, garbled.body, (*garbled.headers, ("Content-Encoding", "gzip")))
    )
    _check_temporary(h, manager, caplog)


def test_a_misconfigured_refresh_url_never_ends_the_session(h: Harness) -> None:
    """A 404 says the client is pointed at the wrong place, not that the session is over."""
    manager = h.manager(rng=MinRandom(), endpoints=Endpoints(refresh="/auth/refreshh"))
    old = h.login(manager)
    h.advance(700)

    for _ in range(3):
        assert manager.access_token() == old.access_token
    assert h.live.ctl.count("POST", "/auth/refreshh") == 3
    assert manager.state == "degraded"
    assert h.ended == []
    assert manager.store.load() is not None


def test_a_misconfigured_refresh_field_ends_the_session(h: Harness) -> None:
    """``invalid_request`` from the refresh endpoint says the call can never succeed without a change (a
    refresh token sent under the wrong name): retrying it forever would only hide the fault, so the session
    ends, as the browser client ends it (tests/scenarios/client_decisions.json)."""
    manager = h.manager(rng=MinRandom(), endpoints=Endpoints(refresh_field="refresh"))
    h.login(manager)
    h.advance(700)

    with pytest.raises(SessionEnded) as ended:
        manager.access_token()  # the service answers 400 invalid_request

    assert ended.value.reason == "invalid_request"
    assert h.live.refreshes() == 1
    assert h.ended == ["invalid_request"]
    assert manager.state == "ended"


# -- backoff: the waits themselves are tested as flow steps in tests/unit/test_client_flow.py --------


def test_retry_after_is_honoured_by_the_manager(h: Harness) -> None:
    """A service that says "come back in 30 s" must not see the client again before that; the still-valid
    token is used meanwhile (a caller with an expired one is told at once: tests/unit/test_client_flow.py)."""
    manager = h.manager(rng=MinRandom(), max_wait=5.0)
    old = h.login(manager)
    h.live.ctl.answer("POST", REFRESH, Canned.error(429, "rate_limited", retry_after="30"))
    h.advance(700)

    for _ in range(20):
        assert manager.access_token() == old.access_token
        h.clock.advance(1)
    assert h.live.refreshes() == 1
    h.clock.advance(10)  # 30 s after the answer
    assert manager.access_token() != old.access_token
    assert h.live.refreshes() == 2
    assert h.ended == []


def test_an_expired_token_waits_for_the_retry_and_gets_a_new_one(h: Harness) -> None:
    """Within ``max_wait`` a caller with an unusable token gets a fresh one once the service is back."""
    manager = h.manager(rng=MinRandom(), max_wait=10.0)
    old = h.login(manager)
    h.advance(1000)
    h.live.ctl.answer("POST", REFRESH, Canned.error(503, "server_error"), Canned.error(503, "server_error"))

    token = manager.access_token()

    assert token != old.access_token
    assert h.live.refreshes() == 3
    assert manager.state == "active"
    assert h.states == ["active", "degraded", "active"]  # login, the two 503s, the new pair


# -- the lost answer ----------------------------------------------------------------------------


def test_a_lost_refresh_answer_is_retried_with_the_same_refresh_token(h: Harness) -> None:
    """The service rotated, but the answer never arrived. Retrying with the same refresh token gets the
    same successor within the grace period; a client that dropped the old pair, or sent anything else,
    would lose the session."""
    manager = h.manager(rng=MinRandom())
    old = h.login(manager)
    h.faults.plan(REFRESH, "lost")
    h.advance(700)

    assert manager.access_token() == old.access_token  # the answer was lost; the old token still works
    assert manager.state == "degraded"
    stored = manager.store.load()
    assert stored is not None
    kept_old_pair = stored.refresh_token == old.refresh_token
    assert kept_old_pair

    token = _recover(manager)

    bodies = h.faults.bodies(REFRESH)
    assert len(bodies) == 2
    same_refresh_token_sent = len(set(bodies)) == 1
    assert same_refresh_token_sent
    lost = json.loads(h.faults.lost_answers[0])
    assert manager.tokens is not None
    got_the_same_successor = manager.tokens.refresh_token == lost["refresh_token"]
    assert got_the_same_successor
    assert h.ended == []
    auth = {"Authorization": f"Bearer {token}"}
    assert h.live.raw("GET", "/resource", headers=auth).status_code == 200

    h.advance(700)  # and the chain goes on: the next rotation is not mistaken for reuse
    assert manager.access_token() != token
    assert manager.state == "active"


def test_a_lost_answer_with_an_expired_token_is_retried_within_the_same_call(h: Harness) -> None:
    manager = h.manager(rng=MinRandom())
    old = h.login(manager)
    h.faults.plan(REFRESH, "lost")
    h.advance(1000)

    token = manager.access_token()

    assert token != old.access_token
    assert h.faults.count(REFRESH) == 2
    assert h.live.refreshes() == 2
    assert manager.state == "active"
    assert h.live.raw("GET", "/resource", headers={"Authorization": f"Bearer {token}"}).status_code == 200


@pytest.mark.anyio
async def test_async_callers_ride_out_a_lost_answer_and_an_outage(ah: Harness) -> None:
    manager = ah.manager(asynchronous=True, rng=MinRandom())
    old = ah.login(manager)
    ah.faults.plan(REFRESH, "connect", "lost")
    ah.advance(700)

    assert await manager.aaccess_token() == old.access_token  # connection refused
    assert manager.state == "degraded"
    assert await manager.aaccess_token() == old.access_token  # the answer was lost
    token = await manager.aaccess_token()  # same refresh token again: the same successor

    assert token != old.access_token
    assert manager.state == "active"
    assert len(set(ah.faults.bodies(REFRESH))) == 1
    assert ah.ended == []
