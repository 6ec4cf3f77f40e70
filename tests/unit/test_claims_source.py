"""The application's claims are asked at login and at each refresh, outside the pure refresh decision."""

from __future__ import annotations

import pytest

from keyturn.clock import FrozenClock
from keyturn.errors import RefreshTokenReused
from keyturn.testing import make_service
from keyturn.typing import JSONValue

pytestmark = pytest.mark.anyio


class Roles:
    """An application's roles table, and every subject it was asked about."""

    def __init__(self) -> None:
        self.roles: dict[str, list[JSONValue]] = {"alice": ["reader"]}
        self.asked: list[str] = []

    async def __call__(self, sub: str) -> dict[str, JSONValue]:
        self.asked.append(sub)
        return {"roles": list(self.roles.get(sub, []))}


async def test_a_role_change_reaches_the_next_access_token() -> None:
    """Claims are the application's at each rotation, not frozen at login: a promoted (or demoted)
    user's next token says so."""
    clock = FrozenClock()
    ts = await make_service(clock=clock)
    roles = Roles()
    ts.service.claims_source = roles
    pair = await ts.service.start("alice")
    assert ts.service.codec.decode_access(pair.access_token, clock.now()).claims["roles"] == ["reader"]

    roles.roles["alice"] = ["reader", "admin"]
    clock.advance(5)
    rotated = await ts.service.refresh(pair.refresh_token)
    claims = ts.service.codec.decode_access(rotated.access_token, clock.now())
    assert claims.claims["roles"] == ["reader", "admin"]
    assert roles.asked == ["alice", "alice"]


async def test_a_grace_replay_keeps_the_refresh_token_byte_for_byte_with_fresh_claims() -> None:
    """The replay's refresh token depends on the stored head alone, so tabs still converge on one chain;
    its new access token carries the claims of now."""
    clock = FrozenClock()
    ts = await make_service(clock=clock)
    roles = Roles()
    ts.service.claims_source = roles
    pair = await ts.service.start("alice")
    first = await ts.service.refresh(pair.refresh_token)
    roles.roles["alice"] = []
    clock.advance(1)
    replay = await ts.service.refresh(pair.refresh_token)
    assert replay.refresh_token == first.refresh_token
    assert ts.service.codec.decode_access(replay.access_token, clock.now()).claims["roles"] == []


async def test_claims_given_at_start_are_not_asked_for_and_a_refused_refresh_asks_nothing() -> None:
    """A session started with claims given does not ask at start; a reuse is refused before any asking."""
    clock = FrozenClock()
    ts = await make_service(clock=clock)
    roles = Roles()
    ts.service.claims_source = roles
    pair = await ts.service.start("alice", {"tenant": "t1"})
    assert roles.asked == []
    await ts.service.refresh(pair.refresh_token)
    clock.advance(ts.settings.grace_period + 1)
    with pytest.raises(RefreshTokenReused):
        await ts.service.refresh(pair.refresh_token)
    assert roles.asked == ["alice"]


async def test_claims_that_would_set_keyturns_own_are_refused() -> None:
    """An application cannot rename the subject or move the expiry through its claims."""
    ts = await make_service()

    async def hostile(sub: str) -> dict[str, JSONValue]:
        return {"sub": "root"}

    ts.service.claims_source = hostile
    with pytest.raises(ValueError, match="sub"):
        await ts.service.start("alice")
