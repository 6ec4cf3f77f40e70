"""Refresh on every backend: rotate, replay, reuse and rejection are applied the same way, atomically."""

from __future__ import annotations

from collections import Counter

import pytest

from keyturn.clock import FrozenClock
from keyturn.errors import RefreshTokenExpired, RefreshTokenReused, SessionExpired, SessionRevoked
from keyturn.sessions import decide_refresh
from keyturn.testing import TestService, make_service
from keyturn.typing import Backend, Replay, Rotate

from ._races import at_once
from .backends import BackendUnderTest

pytestmark = pytest.mark.anyio


@pytest.fixture
async def ts(store: Backend) -> TestService:
    return await make_service(clock=FrozenClock(), store=store)


async def test_rotate_then_replay_then_reuse(ts: TestService) -> None:
    """The three answers of DESIGN section 2, in order, on this backend."""
    clock = ts.clock
    assert isinstance(clock, FrozenClock)
    first = await ts.service.start("alice", {"role": "admin"})
    second = await ts.service.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token

    clock.advance(ts.settings.grace_period)
    replayed = await ts.service.refresh(first.refresh_token)
    assert replayed.refresh_token == second.refresh_token

    clock.advance(1)
    with pytest.raises(RefreshTokenReused):
        await ts.service.refresh(first.refresh_token)
    with pytest.raises(SessionRevoked):
        await ts.service.refresh(second.refresh_token)
    session = await ts.store.get_session(first.session_id)
    assert session is not None
    assert (session.state, session.revoked_reason) == ("revoked", "reuse")
    assert [r.value for r in await ts.store.revocations_since(0, clock.now())] == [first.session_id]


async def test_rejections_change_nothing(ts: TestService) -> None:
    """Expired and ended sessions are refused without a write: the head stays where it was."""
    clock = ts.clock
    assert isinstance(clock, FrozenClock)
    pair = await ts.service.start("alice")
    before = await ts.store.get_session(pair.session_id)

    clock.advance(ts.settings.refresh_idle_lifetime + ts.settings.leeway + 1)
    with pytest.raises(RefreshTokenExpired):
        await ts.service.refresh(pair.refresh_token)
    assert await ts.store.get_session(pair.session_id) == before

    clock.advance(ts.settings.session_absolute_lifetime)
    with pytest.raises(SessionExpired):
        await ts.service.refresh(pair.refresh_token)
    assert await ts.store.get_session(pair.session_id) == before


async def test_sliding_chain_keeps_claims_and_metadata(ts: TestService) -> None:
    """Each rotation moves the head and keeps what the session was started with."""
    pair = await ts.service.start("alice", {"role": "admin"}, user_agent="ua", ip="192.0.2.7")
    for _ in range(5):
        ts.clock.advance(60)  # type: ignore[attr-defined]
        pair = await ts.service.refresh(pair.refresh_token)
    session = await ts.store.get_session(pair.session_id)
    assert session is not None
    assert session.gen == 5
    assert (session.user_agent, session.ip, dict(session.claims)) == ("ua", "192.0.2.7", {"role": "admin"})
    auth = await ts.service.authenticate(pair.access_token)
    assert auth.claims.claims["role"] == "admin"


CALLS = 200
THREADS = 4


async def test_concurrent_refreshes_of_one_token_rotate_once_and_replay_the_rest(
    backend: BackendUnderTest, ts: TestService
) -> None:
    """200 callers with one token, from four stores on their own threads where the backend allows it:
    exactly one rotation, 199 replays, one head."""
    pair = await ts.service.start("alice")
    claims = ts.service.codec.decode_refresh(pair.refresh_token, ts.clock.now())
    policy, now = ts.service.policy, ts.clock.now()
    kid = ts.service.keys.active_refresh.kid

    async def one_call(store: Backend, n: int) -> tuple[str, str]:
        def decide(session, presented):  # type: ignore[no-untyped-def]
            return decide_refresh(session, presented, claims, now, policy, new_jti=f"jti-{n}", new_kid=kid)

        outcome = await store.refresh(claims.sid, claims.jti, decide)
        assert outcome.head is not None
        return type(outcome.decision).__name__, outcome.head.jti

    results = await at_once(backend, ts.store, one_call, threads=THREADS, per_thread=CALLS // THREADS)

    kinds = Counter(kind for kind, _ in results)
    assert kinds == {Rotate.__name__: 1, Replay.__name__: CALLS - 1}
    assert len({head for _, head in results}) == 1
    session = await ts.store.get_session(pair.session_id)
    assert session is not None
    assert (session.state, session.gen) == ("active", 1)
