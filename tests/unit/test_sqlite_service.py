"""A SessionService over SQLiteStore: the rotate / replay / reuse trio holds on disk as in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keyturn import testing
from keyturn.clock import FrozenClock
from keyturn.errors import RefreshTokenReused, SessionRevoked
from keyturn.keys import KeyRing, MasterKey, new_access_key, new_refresh_key
from keyturn.sessions import SessionService
from keyturn.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio


@dataclass
class OnDisk:
    service: SessionService
    store: SQLiteStore
    clock: FrozenClock


@pytest.fixture
async def disk(tmp_path: Path, anyio_backend: str) -> AsyncIterator[OnDisk]:
    settings = testing.make_settings(store_url=f"sqlite:///{tmp_path / 'k.db'}")
    assert settings.secret_key is not None
    master = MasterKey(settings.secret_key.get_secret_value())
    clock = FrozenClock()
    store = SQLiteStore(tmp_path / "k.db")
    await store.open()
    try:
        stored = await store.ensure_keys(
            [new_access_key("ES256", master, clock.now()), new_refresh_key(master, clock.now())]
        )
        service = SessionService(store, KeyRing.from_stored(stored, master), settings, clock=clock)
        yield OnDisk(service, store, clock)
    finally:
        await store.close()


async def test_rotate_then_replay_within_grace_returns_the_same_head(disk: OnDisk) -> None:
    """The grace period must give the byte-identical head on SQLite too (stored claims re-signed)."""
    first = await disk.service.start("alice")
    second = await disk.service.refresh(first.refresh_token)
    disk.clock.advance(5)

    replays = [await disk.service.refresh(first.refresh_token) for _ in range(3)]

    assert second.refresh_token != first.refresh_token
    assert [r.refresh_token for r in replays] == [second.refresh_token] * 3
    session = await disk.store.get_session(first.session_id)
    assert session is not None
    assert (session.gen, session.state) == (1, "active")


async def test_reuse_after_grace_revokes_the_session_on_disk(disk: OnDisk) -> None:
    """Reuse detection must revoke in the same transaction, so every process sees it."""
    first = await disk.service.start("alice")
    second = await disk.service.refresh(first.refresh_token)
    disk.clock.advance(disk.service.settings.grace_period + 1)

    with pytest.raises(RefreshTokenReused):
        await disk.service.refresh(first.refresh_token)

    session = await disk.store.get_session(first.session_id)
    assert session is not None
    assert (session.state, session.revoked_reason) == ("revoked", "reuse")
    with pytest.raises(SessionRevoked):
        await disk.service.refresh(second.refresh_token)
    assert [r.value for r in await disk.store.revocations_since(0, disk.clock.now())] == [first.session_id]


async def test_rotation_chain_continues_across_many_generations(disk: OnDisk) -> None:
    """Each rotation records the old head as rotated and the new one as head, many times over."""
    pair = await disk.service.start("alice")
    for _ in range(5):
        disk.clock.advance(60)
        pair = await disk.service.refresh(pair.refresh_token)

    session = await disk.store.get_session(pair.session_id)
    assert session is not None
    assert session.gen == 5
    assert disk.service.codec.decode_refresh(pair.refresh_token, disk.clock.now()).jti == session.head_jti
