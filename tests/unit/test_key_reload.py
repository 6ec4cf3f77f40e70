"""Keys rotated by another process reach this one: at once for a token signed with them, or by reload."""

from __future__ import annotations

import pytest

from keyturn.errors import TokenInvalid
from keyturn.keys import KeyRing, MasterKey, new_access_key, new_refresh_key
from keyturn.sessions import SessionService
from keyturn.testing import TestService

pytestmark = pytest.mark.anyio


def peer(ts: TestService, *, reload: bool) -> SessionService:
    """Another process of the same service: same store and master secret, its own key ring."""
    assert ts.settings.secret_key is not None
    master = MasterKey(ts.settings.secret_key.get_secret_value())

    async def load() -> KeyRing:
        return KeyRing.from_stored(await ts.store.list_keys(), master)

    return SessionService(
        ts.store, ts.service.keys, ts.settings, clock=ts.clock, key_source=load if reload else None
    )


async def rotate(ts: TestService) -> KeyRing:
    assert ts.settings.secret_key is not None
    master = MasterKey(ts.settings.secret_key.get_secret_value())
    now = ts.clock.now() + 1
    await ts.store.add_keys([new_access_key("ES256", master, now), new_refresh_key(master, now)])
    ring = KeyRing.from_stored(await ts.store.list_keys(), master)
    ts.service.codec.keys = ring  # the process that rotated signs with the new keys at once
    return ring


async def test_a_token_signed_with_a_key_rotated_elsewhere_is_accepted_after_a_reload(
    ts: TestService,
) -> None:
    """A user whose refresh went to the rotating process must not be logged out by the next process."""
    other = peer(ts, reload=True)
    pair = await ts.service.start("alice")
    ring = await rotate(ts)
    rotated = await ts.service.refresh(pair.refresh_token)  # signed with the new refresh key

    again = await other.refresh(rotated.refresh_token)

    assert other.keys.active_refresh.kid == ring.active_refresh.kid
    assert (await other.authenticate(again.access_token)).claims.kid == ring.active_access.kid
    # Tokens signed with the old keys still verify everywhere.
    assert (await other.authenticate(pair.access_token)).session.sid == pair.session_id


async def test_without_a_key_source_an_unknown_key_is_refused(ts: TestService) -> None:
    """The reload is what makes the difference: a process that cannot reload refuses the token."""
    other = peer(ts, reload=False)
    pair = await ts.service.start("alice")
    await rotate(ts)
    rotated = await ts.service.refresh(pair.refresh_token)

    with pytest.raises(TokenInvalid):
        await other.refresh(rotated.refresh_token)


async def test_reloads_caused_by_unknown_keys_are_rate_limited(ts: TestService) -> None:
    """A flood of tokens naming unknown keys costs at most one store read per interval."""
    loads = 0
    assert ts.settings.secret_key is not None
    master = MasterKey(ts.settings.secret_key.get_secret_value())

    async def load() -> KeyRing:
        nonlocal loads
        loads += 1
        return KeyRing.from_stored(await ts.store.list_keys(), master)

    other = SessionService(ts.store, ts.service.keys, ts.settings, clock=ts.clock, key_source=load)
    forged = ts.tokens.access_token(headers={"kid": "no-such-key"})
    for _ in range(50):
        with pytest.raises(TokenInvalid):
            await other.authenticate(forged)
    assert loads == 1
    ts.clock.advance(1.5)  # type: ignore[attr-defined]
    with pytest.raises(TokenInvalid):
        await other.authenticate(forged)
    assert loads == 2
