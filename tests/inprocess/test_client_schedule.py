"""TokenManager's schedule: refresh due ``min(refresh_margin, lifetime / 3)`` before expiry, in server time.

A client's own clock can be minutes off. The schedule must follow the clock offset measured from the
service's ``server_time`` (at the midpoint of the call), or a client ahead refreshes far too early and a
client behind sends expired tokens. The service here is the real one (uvicorn in a thread); both clocks
are frozen and moved by the tests.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest

from keyturn.client import MemoryTokenStore, TokenManager, Tokens

from ._client_live import Harness, LiveService, MaxRandom, MinRandom, live_service

REFRESH = "/auth/refresh"


@pytest.mark.parametrize("skew", [600.0, -600.0], ids=["client-10min-ahead", "client-10min-behind"])
def test_refresh_is_due_at_the_margin_before_expiry_in_server_time(service: LiveService, skew: float) -> None:
    """Refreshing by the local clock would refresh at once (clock ahead) or after expiry (clock behind).

    The access token lives 900 s, so the margin is min(300, 900 / 3) = 300 s: not due 302 s before expiry
    in server time, due 298 s before it, whatever the client's own clock says.
    """
    h = Harness.on(service, skew=skew)
    try:
        manager = h.manager(jitter=0.0)
        first = h.login(manager)
        assert manager.clock_offset == pytest.approx(-skew, abs=1e-6)
        assert first.access_expires_at == pytest.approx(service.clock.now() + 900, abs=1e-6)

        h.advance(598)
        assert manager.access_token() == first.access_token
        assert service.refreshes() == 0, "refreshed early"

        h.advance(4)
        token = manager.access_token()
        assert service.refreshes() == 1, "not refreshed once due"
        assert token != first.access_token
        assert manager.clock_offset == pytest.approx(-skew, abs=1e-6)
        assert manager.state == "active"
    finally:
        h.close()


def test_the_offset_is_measured_at_the_midpoint_of_the_call(h: Harness) -> None:
    """A call that takes a while must not bias the offset by its whole duration: half of it, at most."""
    h.clock.advance(600)  # the client is 10 minutes ahead
    sent_at = h.clock.now()
    h.faults.before_send = lambda request: h.clock.advance(4)  # every call takes 4 s of client time
    manager = h.manager(jitter=0.0)
    h.login(manager)

    server_time = h.live.clock.now()
    assert manager.clock_offset == pytest.approx(server_time - (sent_at + 2), abs=1e-6)
    assert manager.server_now() == pytest.approx(server_time + 2, abs=1e-6)


def test_the_margin_is_capped_at_a_third_of_the_lifetime(h: Harness) -> None:
    """A margin larger than the lifetime allows would refresh right after every refresh, forever."""
    manager = h.manager(jitter=0.0, refresh_margin=800.0)
    first = h.login(manager)

    h.advance(350)  # a margin of 800 s would make the token due here
    assert manager.access_token() == first.access_token
    assert h.live.refreshes() == 0

    h.advance(252)  # 298 s left: under 900 / 3
    assert manager.access_token() != first.access_token
    assert h.live.refreshes() == 1


def test_a_token_not_due_is_handed_out_without_any_call(h: Harness) -> None:
    """The check before every request must cost no round trip while the token is fresh."""
    manager = h.manager()
    first = h.login(manager)
    calls = len(h.faults.sent)

    for _ in range(50):
        h.advance(5)
        assert manager.access_token() == first.access_token
    assert len(h.faults.sent) == calls


def _pair(expires_at: float, lifetime: float) -> Tokens:
    return Tokens("access-not-a-jwt", "refresh-not-a-jwt", expires_at, lifetime, None, "sid", 0.0)


@pytest.mark.parametrize(("margin", "lifetime", "effective"), [(300.0, 900.0, 300.0), (300.0, 600.0, 200.0)])
def test_jitter_keeps_the_refresh_point_within_margin_and_margin_times_one_plus_jitter(
    margin: float, lifetime: float, effective: float
) -> None:
    """Jitter spreads many clients' refreshes, but never past the margin's bounds: earlier than
    ``margin * (1 + jitter)`` wastes tokens, later than ``margin`` risks sending an expired one."""
    lead: list[float] = []
    for seed in range(300):
        manager = TokenManager(
            "http://127.0.0.1:9",
            store=MemoryTokenStore(_pair(10_000.0, lifetime)),
            refresh_margin=margin,
            jitter=0.1,
            rng=random.Random(seed),
        )
        lead.append(10_000.0 - manager._debug()["refresh_at"])

    assert min(lead) >= effective - 1e-9
    assert max(lead) <= effective * 1.1 + 1e-9
    assert max(lead) - min(lead) > effective * 0.1 * 0.8, "no real jitter"


def test_the_jitter_bounds_hold_at_both_extremes_as_behaviour(h: Harness) -> None:
    """The extremes of the jitter, as the application sees them: the token is handed out unchanged up to
    the bound and refreshed from it on."""
    for rng, lead in ((MinRandom(), 300.0), (MaxRandom(), 330.0)):
        manager = h.manager(jitter=0.1, rng=rng)
        first = h.login(manager)
        before = h.live.refreshes()
        h.advance(900 - lead - 1)
        assert manager.access_token() == first.access_token
        assert h.live.refreshes() == before
        h.advance(2)
        assert manager.access_token() != first.access_token
        assert h.live.refreshes() == before + 1


def test_tokens_repr_never_shows_the_tokens(h: Harness) -> None:
    """Pairs end up in logs and tracebacks; their repr must carry no token or piece of one."""
    manager = h.manager()
    tokens = h.login(manager)
    pieces = [*tokens.access_token.split("."), *tokens.refresh_token.split(".")]
    for text in (repr(tokens), str(tokens), f"{tokens!r}", repr(manager), repr([tokens])):
        leaked = [piece for piece in pieces if len(piece) > 8 and piece in text]
        assert not leaked, "a token piece is in a repr"
    assert tokens.session_id is not None
    assert tokens.session_id in repr(tokens)


# -- a refresh that does not extend the expiry ------------------------------------------------------


@pytest.fixture(scope="module")
def ending_service() -> Iterator[LiveService]:
    """Sessions that end 1000 s after login: near the end a refresh cannot extend the access token."""
    with live_service(
        access_token_lifetime=900, refresh_idle_lifetime=1000, session_absolute_lifetime=1000
    ) as live:
        yield live


def _to_the_end(h: Harness) -> TokenManager:
    """A manager whose first refresh extended the token to the session's end (server time +1000)."""
    manager = h.manager(rng=MaxRandom())
    first = h.login(manager)
    h.advance(700)
    second = manager.access_token()
    assert second != first.access_token
    assert h.live.refreshes() == 1
    return manager


def test_a_refresh_that_does_not_extend_the_expiry_backs_off(ending_service: LiveService) -> None:
    """At the session's end every refresh gives the same expiry; refreshing again at once would hammer
    the service with a request per application call."""
    h = Harness.on(ending_service)
    try:
        manager = _to_the_end(h)
        h.advance(250)  # 50 s left, due; the refresh cannot go past the session's end
        token = manager.access_token()
        assert h.live.refreshes() == 2
        assert manager.tokens is not None
        assert manager.tokens.access_token == token
        assert manager.tokens.access_expires_at == pytest.approx(h.live.clock.now() + 50, abs=1e-6)

        h.advance(40)  # due again (10 s left) and still usable; the first backoff (0.5 s) is over
        token = manager.access_token()
        assert h.live.refreshes() == 3
        # MaxRandom: the backoff of a second failure is its whole ceiling, 1 s (client clock) from it on.
        for _ in range(9):
            h.clock.advance(0.1)
            assert manager.access_token() == token
        assert h.live.refreshes() == 3, "refreshed again at once"
        assert h.ended == []
    finally:
        h.close()


def test_background_refresher_refreshes_ahead_of_time(h: Harness) -> None:
    """Applications that call rarely rely on the background thread to keep the token fresh."""
    manager = h.manager(jitter=0.0)
    first = h.login(manager)
    h.advance(610)
    stop = manager.start_background()
    try:
        deadline = time.monotonic() + 10
        while h.live.refreshes() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop()
    assert h.live.refreshes() == 1
    assert manager.tokens is not None
    assert manager.tokens.access_token != first.access_token
