"""Refresh bound to a client, client-aware revocation, and RFC 7662 introspection, on a frozen clock."""

from __future__ import annotations

import pytest

from keyturn.clock import FrozenClock
from keyturn.errors import RefreshTokenReused, TokenInvalid
from keyturn.introspection import introspect
from keyturn.testing import TestService

pytestmark = pytest.mark.anyio


async def test_a_refresh_by_another_client_is_refused_and_changes_nothing(ts: TestService) -> None:
    """RFC 6749 section 6: the token was issued to ``spa``; ``other`` neither rotates the session nor, with
    a stale copy, ends it as reused."""
    first = await ts.service.start("alice", client_id="spa")
    second = await ts.service.refresh(first.refresh_token, client_id="spa")

    with pytest.raises(TokenInvalid, match="another client"):
        await ts.service.refresh(second.refresh_token, client_id="other")
    ts.clock.advance(3600)  # past the grace period: ``first`` is a stale copy now
    with pytest.raises(TokenInvalid, match="another client"):
        await ts.service.refresh(first.refresh_token, client_id="other")

    third = await ts.service.refresh(second.refresh_token, client_id="spa")
    assert third.refresh_token != second.refresh_token
    with pytest.raises(RefreshTokenReused):  # the owner's own stale copy is still reuse
        await ts.service.refresh(first.refresh_token, client_id="spa")


async def test_a_session_without_a_client_is_the_default_clients(ts: TestService) -> None:
    """``/auth/login`` starts sessions for ``keyturn``: an OAuth client naming none refreshes them."""
    pair = await ts.service.start("alice")

    await ts.service.refresh(pair.refresh_token, client_id="keyturn")


async def test_revocation_by_another_client_revokes_nothing(ts: TestService) -> None:
    pair = await ts.service.start("alice", client_id="spa")

    await ts.service.revoke_token(pair.refresh_token, client_id="other")
    await ts.service.revoke_token(pair.access_token, client_id="other")
    await ts.service.authenticate(pair.access_token)  # still live

    await ts.service.revoke_token(pair.refresh_token, client_id="spa")
    assert (await introspect(ts.service, pair.access_token))["active"] is False


async def test_introspection_of_a_live_access_token_gives_its_claims(ts: TestService) -> None:
    pair = await ts.service.start("alice", {"role": "admin"}, client_id="spa")

    found = await introspect(ts.service, pair.access_token)

    assert found["active"] is True
    assert found["token_type"] == "Bearer"
    assert (found["sub"], found["username"], found["client_id"], found["role"]) == (
        "alice",
        "alice",
        "spa",
        "admin",
    )
    assert found["sid"] == pair.session_id


async def test_introspection_of_the_current_refresh_token_is_active_and_of_a_rotated_one_not(
    ts: TestService,
) -> None:
    """A rotated copy would get a replay or a reuse verdict, never a new session: not active."""
    first = await ts.service.start("alice", client_id="spa")
    second = await ts.service.refresh(first.refresh_token)

    current = await introspect(ts.service, second.refresh_token, "refresh_token")

    assert current["active"] is True
    assert current["token_type"] == "refresh_token"
    assert current["client_id"] == "spa"
    assert await introspect(ts.service, first.refresh_token) == {"active": False}


async def test_revoked_expired_and_unknown_tokens_are_inactive_and_say_nothing_more(
    ts: TestService, clock: FrozenClock
) -> None:
    revoked = await ts.service.start("alice")
    await ts.service.revoke_token(revoked.access_token)
    expiring = await ts.service.start("alice")

    assert await introspect(ts.service, revoked.access_token) == {"active": False}
    assert await introspect(ts.service, "not.a.token") == {"active": False}
    clock.advance(ts.settings.access_token_lifetime + ts.settings.leeway + 1)
    assert await introspect(ts.service, expiring.access_token) == {"active": False}
    assert (await introspect(ts.service, expiring.refresh_token))["active"] is True
