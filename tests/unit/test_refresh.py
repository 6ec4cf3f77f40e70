"""SessionService.refresh, branch by branch, on a frozen clock (DESIGN section 2)."""

from __future__ import annotations

import pytest

from keyturn.clock import FrozenClock
from keyturn.errors import (
    RefreshTokenExpired,
    RefreshTokenReused,
    SessionExpired,
    SessionRevoked,
    TokenRevoked,
)
from keyturn.sessions import TokenPair
from keyturn.testing import TestService, make_service

pytestmark = pytest.mark.anyio

DAY = 86_400


def gen_of(ts: TestService, refresh_token: str) -> int:
    return ts.service.codec.decode_refresh(refresh_token, ts.clock.now()).gen


async def refresh_at(ts: TestService, clock: FrozenClock, pair: TokenPair, when: float) -> TokenPair:
    """Keep the session alive with a refresh every 10 days, then refresh once more at ``when``."""
    while clock.now() + 10 * DAY < when:
        clock.advance(10 * DAY)
        pair = await ts.service.refresh(pair.refresh_token)
    clock.set(when)
    return await ts.service.refresh(pair.refresh_token)


# -- rotate ------------------------------------------------------------------------------------


async def test_rotate_issues_a_new_refresh_token_one_generation_on(ts: TestService) -> None:
    """The head token rotates: a new token, gen+1, and the session's head moves to it."""
    first = await ts.service.start("alice")
    second = await ts.service.refresh(first.refresh_token)

    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    assert second.session_id == first.session_id
    assert gen_of(ts, first.refresh_token) == 0
    assert gen_of(ts, second.refresh_token) == 1
    session = await ts.store.get_session(first.session_id)
    assert session is not None
    assert session.gen == 1
    assert session.head_jti == ts.service.codec.decode_refresh(second.refresh_token, ts.clock.now()).jti


async def test_rotated_token_replays_within_grace_instead_of_failing(ts: TestService) -> None:
    """Right after a rotation the old token still works (a lost response must not cost the session)."""
    first = await ts.service.start("alice")
    second = await ts.service.refresh(first.refresh_token)
    ts.clock.advance(1)

    again = await ts.service.refresh(first.refresh_token)

    assert again.refresh_token == second.refresh_token


async def test_rotated_token_still_replays_at_exactly_the_grace_period(
    ts: TestService, clock: FrozenClock
) -> None:
    """The grace period is inclusive: a retry at exactly ``grace_period`` seconds is not a reuse."""
    first = await ts.service.start("alice")
    second = await ts.service.refresh(first.refresh_token)
    clock.advance(ts.settings.grace_period)

    again = await ts.service.refresh(first.refresh_token)

    assert again.refresh_token == second.refresh_token


# -- replay ------------------------------------------------------------------------------------


async def test_replay_returns_the_byte_identical_head_and_a_new_access_token(
    ts: TestService, clock: FrozenClock
) -> None:
    """Two tabs refreshing at once must converge on one chain: the same head token, fresh access."""
    first = await ts.service.start("alice")
    head = await ts.service.refresh(first.refresh_token)
    clock.advance(5)

    replay = await ts.service.refresh(first.refresh_token)

    assert replay.refresh_token == head.refresh_token
    assert replay.access_token != head.access_token
    assert replay.refresh_expires_at == head.refresh_expires_at
    assert replay.access_expires_at == int(clock.now()) + ts.settings.access_token_lifetime
    authenticated = await ts.service.authenticate(replay.access_token)
    assert authenticated.session.sid == first.session_id


async def test_many_replays_all_return_the_same_head_and_change_nothing(
    ts: TestService, clock: FrozenClock
) -> None:
    """Retries must not advance the chain, or the tabs would fork it and trip reuse detection."""
    first = await ts.service.start("alice")
    head = await ts.service.refresh(first.refresh_token)
    before = await ts.store.get_session(first.session_id)

    replays = []
    for _ in range(5):
        clock.advance(2)
        replays.append((await ts.service.refresh(first.refresh_token)).refresh_token)

    assert replays == [head.refresh_token] * 5
    after = await ts.store.get_session(first.session_id)
    assert after is not None
    assert before is not None
    assert (after.head_jti, after.gen, after.state) == (before.head_jti, before.gen, "active")


async def test_head_returned_by_a_replay_rotates_normally(ts: TestService, clock: FrozenClock) -> None:
    """The token a replay hands back is the real head: the client's next refresh rotates."""
    first = await ts.service.start("alice")
    await ts.service.refresh(first.refresh_token)
    replay = await ts.service.refresh(first.refresh_token)
    clock.advance(60)

    third = await ts.service.refresh(replay.refresh_token)

    assert gen_of(ts, third.refresh_token) == 2


# -- reuse -------------------------------------------------------------------------------------


async def test_reuse_after_grace_revokes_the_whole_session(ts: TestService, clock: FrozenClock) -> None:
    """A rotated token used after the grace period means theft: end the session for everyone."""
    first = await ts.service.start("alice")
    second = await ts.service.refresh(first.refresh_token)
    clock.advance(ts.settings.grace_period + 1)

    with pytest.raises(RefreshTokenReused):
        await ts.service.refresh(first.refresh_token)

    session = await ts.store.get_session(first.session_id)
    assert session is not None
    assert session.state == "revoked"
    assert session.revoked_reason == "reuse"
    with pytest.raises(SessionRevoked):
        await ts.service.refresh(second.refresh_token)
    with pytest.raises(TokenRevoked):
        await ts.service.authenticate(second.access_token)
    feed = await ts.store.revocations_since(0, clock.now())
    assert [(r.kind, r.value) for r in feed] == [("sid", first.session_id)]


async def test_reuse_by_the_thief_after_the_user_rotated_twice_is_caught(
    ts: TestService, clock: FrozenClock
) -> None:
    """An old generation stays a reuse signal however far the chain has moved on."""
    first = await ts.service.start("alice")
    second = await ts.service.refresh(first.refresh_token)
    clock.advance(60)
    third = await ts.service.refresh(second.refresh_token)
    clock.advance(60)

    with pytest.raises(RefreshTokenReused):
        await ts.service.refresh(first.refresh_token)
    with pytest.raises(SessionRevoked):
        await ts.service.refresh(third.refresh_token)


# -- expiry --------------------------------------------------------------------------------------


async def test_refresh_token_past_idle_lifetime_and_leeway_is_expired(
    ts: TestService, clock: FrozenClock
) -> None:
    """An idle session ends on its own: the refresh token dies after idle lifetime plus leeway."""
    pair = await ts.service.start("alice")
    clock.set(pair.refresh_expires_at + ts.settings.leeway + 1)

    with pytest.raises(RefreshTokenExpired):
        await ts.service.refresh(pair.refresh_token)

    session = await ts.store.get_session(pair.session_id)
    assert session is not None
    assert session.state == "active"  # expiry is not a revocation


async def test_refresh_token_just_inside_the_leeway_still_rotates(
    ts: TestService, clock: FrozenClock
) -> None:
    """Clock skew up to the leeway must not log anyone out."""
    pair = await ts.service.start("alice")
    clock.set(pair.refresh_expires_at + ts.settings.leeway)

    rotated = await ts.service.refresh(pair.refresh_token)

    assert gen_of(ts, rotated.refresh_token) == 1


async def test_refresh_of_a_revoked_session_is_session_revoked(ts: TestService) -> None:
    """Logout must stick: a revoked session's refresh token never works again."""
    pair = await ts.service.start("alice")
    assert await ts.service.revoke(pair.session_id, "logout") is True
    assert await ts.service.revoke(pair.session_id, "logout") is False

    with pytest.raises(SessionRevoked):
        await ts.service.refresh(pair.refresh_token)


async def test_each_refresh_slides_expiry_to_now_plus_idle_until_capped_by_absolute(
    ts: TestService, clock: FrozenClock
) -> None:
    """Sliding expiry keeps active users in, but never past the session's absolute end."""
    idle = ts.settings.refresh_idle_lifetime
    pair = await ts.service.start("alice")
    absolute_end = int(clock.now()) + ts.settings.session_absolute_lifetime
    assert pair.refresh_expires_at == int(clock.now()) + idle

    seen = []
    for _ in range(3):
        clock.advance(7 * DAY)
        pair = await ts.service.refresh(pair.refresh_token)
        now = clock.now()
        claims = ts.service.codec.decode_refresh(pair.refresh_token, now)
        assert pair.refresh_expires_at == claims.exp == min(int(now) + idle, absolute_end)
        seen.append(pair.refresh_expires_at)

    assert seen[1] - seen[0] == 7 * DAY  # slid with time while far from the end
    assert seen[-1] == absolute_end < int(clock.now()) + idle  # capped once now + idle passes the end


async def test_refresh_at_the_absolute_end_is_session_expired(ts: TestService, clock: FrozenClock) -> None:
    """The absolute lifetime is never extended, whatever the refresh token's own expiry says."""
    pair = await ts.service.start("alice")
    session = await ts.store.get_session(pair.session_id)
    assert session is not None
    pair = await refresh_at(ts, clock, pair, session.absolute_expires_at - 1)
    clock.set(session.absolute_expires_at)

    with pytest.raises(SessionExpired):
        await ts.service.refresh(pair.refresh_token)


async def test_token_expiring_at_the_absolute_end_is_session_expired_not_refresh_expired(
    ts: TestService, clock: FrozenClock
) -> None:
    """A token capped at the absolute end reports the session's end, so the client says the right thing."""
    pair = await ts.service.start("alice")
    session = await ts.store.get_session(pair.session_id)
    assert session is not None
    capped = await refresh_at(ts, clock, pair, session.absolute_expires_at - DAY)
    assert capped.refresh_expires_at == session.absolute_expires_at
    clock.set(capped.refresh_expires_at + ts.settings.leeway + 1)

    with pytest.raises(SessionExpired):
        await ts.service.refresh(capped.refresh_token)


async def test_access_token_never_outlives_the_session(ts: TestService, clock: FrozenClock) -> None:
    """An access token valid past the absolute end would keep an ended session alive."""
    pair = await ts.service.start("alice")
    session = await ts.store.get_session(pair.session_id)
    assert session is not None

    late = await refresh_at(ts, clock, pair, session.absolute_expires_at - 100)

    assert late.access_expires_at == session.absolute_expires_at
    assert late.expires_in == 100
    claims = ts.service.codec.decode_access(late.access_token, clock.now())
    assert claims.exp == session.absolute_expires_at


# -- the subject check -----------------------------------------------------------------------------


@pytest.fixture
async def checked(clock: FrozenClock, anyio_backend: str) -> TestService:
    """A service that asks the built-in user directory on each refresh, with users alice and bob."""
    svc = await make_service(clock=clock, check_subjects=True)
    assert await svc.users.add("alice", "correct horse")
    assert await svc.users.add("bob", "battery staple")
    return svc


async def test_enabled_user_refreshes_under_the_subject_check(checked: TestService) -> None:
    """The check must say yes to a user in good standing, or nobody could stay signed in."""
    pair = await checked.service.start("alice")

    rotated = await checked.service.refresh(pair.refresh_token)

    assert gen_of(checked, rotated.refresh_token) == 1


async def test_disabling_a_user_ends_their_refreshes(checked: TestService) -> None:
    """A disabled account must not keep its sessions alive."""
    pair = await checked.service.start("alice")
    assert await checked.users.set_disabled("alice", True)

    with pytest.raises(SessionRevoked):
        await checked.service.refresh(pair.refresh_token)


async def test_subject_check_revokes_a_session_the_user_store_disabled_directly(
    checked: TestService,
) -> None:
    """The refresh hook itself catches a disabled user, even if nothing revoked the session first."""
    pair = await checked.service.start("alice")
    assert await checked.store.update_user("alice", disabled=True)

    with pytest.raises(SessionRevoked):
        await checked.service.refresh(pair.refresh_token)

    session = await checked.store.get_session(pair.session_id)
    assert session is not None
    assert (session.state, session.revoked_reason) == ("revoked", "subject_disabled")


async def test_password_change_revokes_every_session_of_that_user_only(checked: TestService) -> None:
    """A password change is how a user throws out a thief: all their sessions end, no one else's."""
    laptop = await checked.service.start("alice")
    phone = await checked.service.start("alice")
    other = await checked.service.start("bob")

    assert await checked.users.set_password("alice", "new password")

    for pair in (laptop, phone):
        session = await checked.store.get_session(pair.session_id)
        assert session is not None
        assert (session.state, session.revoked_reason) == ("revoked", "password_changed")
        with pytest.raises(SessionRevoked):
            await checked.service.refresh(pair.refresh_token)
    await checked.service.refresh(other.refresh_token)


@pytest.mark.parametrize("subject", ["ghost", "Alice"])
async def test_unknown_subject_gets_session_revoked(checked: TestService, subject: str) -> None:
    """A deleted or never-known user holds no session, even one started for them."""
    pair = await checked.service.start(subject)

    with pytest.raises(SessionRevoked):
        await checked.service.refresh(pair.refresh_token)

    session = await checked.store.get_session(pair.session_id)
    assert session is not None
    assert session.state == "revoked"
