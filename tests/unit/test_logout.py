"""SessionService.logout, logout_all and revoke_own: how applications end sessions in code."""

from __future__ import annotations

import pytest

from keyturn.clock import FrozenClock
from keyturn.errors import InsufficientScope, RefreshTokenExpired, SessionRevoked, TokenInvalid, TokenRevoked
from keyturn.testing import TestService

pytestmark = pytest.mark.anyio


async def test_logout_by_access_token_ends_the_session_and_is_idempotent(ts: TestService) -> None:
    """A double click on "log out" must not turn into an error the second time."""
    pair = await ts.service.start("alice")

    assert await ts.service.logout(access_token=pair.access_token) == [pair.session_id]
    assert await ts.service.logout(access_token=pair.access_token) == []
    with pytest.raises(SessionRevoked):
        await ts.service.refresh(pair.refresh_token)
    session = await ts.store.get_session(pair.session_id)
    assert session is not None
    assert session.revoked_reason == "logout"


async def test_logout_by_an_expired_refresh_token_still_ends_the_session(
    ts: TestService, clock: FrozenClock
) -> None:
    """An expired refresh token still proves which session it names, so a client can always log out."""
    pair = await ts.service.start("alice")
    clock.advance(ts.settings.refresh_idle_lifetime + ts.settings.leeway + 1)
    with pytest.raises(RefreshTokenExpired):
        await ts.service.refresh(pair.refresh_token)

    assert await ts.service.logout(refresh_token=pair.refresh_token) == [pair.session_id]


async def test_logout_refuses_a_token_that_does_not_verify(ts: TestService) -> None:
    """Logout names a session by a token; a forged one must not end anybody's session."""
    pair = await ts.service.start("alice")
    forged = pair.refresh_token[:-4] + ("AAAA" if not pair.refresh_token.endswith("AAAA") else "BBBB")

    with pytest.raises(TokenInvalid):
        await ts.service.logout(refresh_token=forged)
    session = await ts.store.get_session(pair.session_id)
    assert session is not None
    assert session.state == "active"


async def test_a_rotated_refresh_token_ends_no_session(ts: TestService, clock: FrozenClock) -> None:
    """A rotated copy (a stolen one, say) neither logs its session out nor revokes it (RFC 7009: an
    invalid token revokes nothing), within the grace period or past it, before or after it expires."""
    first = await ts.service.start("alice")
    current = await ts.service.refresh(first.refresh_token)
    for wait in (0, ts.settings.grace_period + 1, ts.settings.refresh_idle_lifetime):
        clock.advance(wait)
        with pytest.raises(TokenInvalid):
            await ts.service.logout(refresh_token=first.refresh_token)
        await ts.service.revoke_token(first.refresh_token)
        session = await ts.store.get_session(first.session_id)
        assert session is not None
        assert session.state == "active"
    assert await ts.service.logout(refresh_token=current.refresh_token) == [first.session_id]


async def test_an_access_token_cannot_list_or_end_sessions(ts: TestService) -> None:
    """Resource servers receive access tokens; the credential that manages sessions is the refresh token."""
    pair = await ts.service.start("alice")
    with pytest.raises(InsufficientScope):
        await ts.service.current_refresh(pair.access_token)
    with pytest.raises(InsufficientScope):
        await ts.service.logout_all(refresh_token=pair.access_token)
    assert (await ts.service.current_refresh(pair.refresh_token)).sid == pair.session_id


async def test_logout_all_ends_every_session_of_the_subject_only(ts: TestService) -> None:
    """ "Log out everywhere" ends all of the user's devices and nobody else's."""
    phone = await ts.service.start("alice")
    laptop = await ts.service.start("alice")
    other = await ts.service.start("bob")

    ended = await ts.service.logout_all(refresh_token=phone.refresh_token)

    assert sorted(ended) == sorted([phone.session_id, laptop.session_id])
    assert [s.sid for s in await ts.service.list_sessions("bob")] == [other.session_id]
    with pytest.raises(TokenRevoked):
        await ts.service.authenticate(laptop.access_token)


async def test_logout_all_by_a_refresh_token_of_an_ended_session_is_refused(ts: TestService) -> None:
    """An old refresh token of an ended session must not be able to log the user out everywhere."""
    old = await ts.service.start("alice")
    await ts.service.logout(access_token=old.access_token)
    current = await ts.service.start("alice")

    with pytest.raises(SessionRevoked):
        await ts.service.logout_all(refresh_token=old.refresh_token)
    assert [s.sid for s in await ts.service.list_sessions("alice")] == [current.session_id]


async def test_revoke_own_ends_only_the_callers_sessions(ts: TestService) -> None:
    """A session id from someone else is "not found", so ids cannot be probed or ended across users."""
    mine = await ts.service.start("alice")
    theirs = await ts.service.start("bob")

    with pytest.raises(LookupError):
        await ts.service.revoke_own("alice", theirs.session_id)
    with pytest.raises(LookupError):
        await ts.service.revoke_own("alice", "no-such-session")
    assert await ts.service.revoke_own("alice", mine.session_id) == [mine.session_id]
    assert await ts.service.revoke_own("alice", mine.session_id) == []
    assert [s.sid for s in await ts.service.list_sessions("bob")] == [theirs.session_id]


async def test_logout_all_refuses_an_old_or_expired_refresh_token(ts: TestService) -> None:
    """A stolen old refresh token must not be a way to log the user out of every device."""
    first = await ts.service.start("alice")
    other = await ts.service.start("alice")
    current = await ts.service.refresh(first.refresh_token)

    with pytest.raises(TokenInvalid):
        await ts.service.logout_all(refresh_token=first.refresh_token)
    ts.clock.advance(ts.settings.refresh_idle_lifetime + ts.settings.leeway + 1)  # type: ignore[attr-defined]
    with pytest.raises(RefreshTokenExpired):
        await ts.service.logout_all(refresh_token=current.refresh_token)
    assert {s.sid for s in await ts.service.list_sessions("alice")} == {first.session_id, other.session_id}


async def test_logout_all_by_the_current_refresh_token_ends_every_session(ts: TestService) -> None:
    """The current refresh token stands for a live session, so it may end all of them."""
    first = await ts.service.start("alice")
    other = await ts.service.start("alice")
    current = await ts.service.refresh(first.refresh_token)

    ended = await ts.service.logout_all(refresh_token=current.refresh_token)

    assert sorted(ended) == sorted([first.session_id, other.session_id])
