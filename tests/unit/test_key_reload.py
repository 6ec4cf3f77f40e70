"""Keys rotated by another process reach this one: at once for a token signed with them, or by reload."""

from __future__ import annotations

import asyncio

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


def counting_peer(ts: TestService) -> tuple[SessionService, list[int]]:
    """A peer whose key loads are counted."""
    assert ts.settings.secret_key is not None
    master = MasterKey(ts.settings.secret_key.get_secret_value())
    loads = [0]

    async def load() -> KeyRing:
        loads[0] += 1
        return KeyRing.from_stored(await ts.store.list_keys(), master)

    return SessionService(ts.store, ts.service.keys, ts.settings, clock=ts.clock, key_source=load), loads


async def test_made_up_key_ids_cost_one_reload_each_at_most_and_one_per_interval(ts: TestService) -> None:
    """A flood of tokens naming unknown keys cannot turn into a flood of store reads."""
    other, loads = counting_peer(ts)
    forged = ts.tokens.access_token(headers={"kid": "no-such-key"})
    for _ in range(50):
        with pytest.raises(TokenInvalid):
            await other.authenticate(forged)
    assert loads == [1]  # the id is now known to be unknown

    # Twenty other made-up ids at once, inside the interval: they wait for one shared, later reload.
    others = [ts.tokens.access_token(headers={"kid": f"made-up-{i}"}) for i in range(20)]
    answers = await asyncio.gather(*(other.authenticate(t) for t in others), return_exceptions=True)
    assert all(isinstance(a, TokenInvalid) for a in answers)
    assert loads == [2]


async def test_concurrent_tokens_with_a_new_key_share_one_reload_and_all_pass(ts: TestService) -> None:
    """Right after a rotation many requests carry the new key at once; none may be refused."""
    other, loads = counting_peer(ts)
    pairs = [await ts.service.start("alice") for _ in range(20)]
    await rotate(ts)
    rotated = [await ts.service.refresh(p.refresh_token) for p in pairs]

    checked = await asyncio.gather(*(other.authenticate(p.access_token) for p in rotated))

    assert [c.session.sid for c in checked] == [p.session_id for p in rotated]
    assert loads == [1]


async def test_a_new_key_soon_after_a_reload_is_accepted_after_a_short_wait(ts: TestService) -> None:
    """A reload that ran just before the rotation must not make the new key look forged."""
    other, loads = counting_peer(ts)
    await other.reload_keys()  # the periodic reload, just before the rotation
    pair = await ts.service.start("alice")
    await rotate(ts)
    rotated = await ts.service.refresh(pair.refresh_token)

    assert (await other.refresh(rotated.refresh_token)).session_id == pair.session_id
    assert loads == [2]


async def test_a_replay_whose_head_was_signed_with_a_newer_key_is_answered(ts: TestService) -> None:
    """A retried refresh reaching a process that has not seen the new refresh key yet must get the head,
    not a 500 (and not, 30 s later, a reuse)."""
    other, loads = counting_peer(ts)
    pair = await ts.service.start("alice")
    await rotate(ts)
    rotated = await ts.service.refresh(pair.refresh_token)  # head signed with the new refresh key

    replayed = await other.refresh(pair.refresh_token)  # the old token, within the grace period

    assert replayed.refresh_token == rotated.refresh_token
    assert loads == [1]
