"""SQLiteStore when another process holds the write lock: the call waits off the loop, then completes."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from keyturn import testing
from keyturn.errors import RefreshTokenReused
from keyturn.server.runtime import open_runtime

pytestmark = pytest.mark.anyio


async def test_refresh_waits_for_a_foreign_lock_without_stalling_the_loop(tmp_path: Path) -> None:
    """Another process's transaction must delay a refresh, not fail it, and not freeze other requests."""
    settings = testing.make_settings(store_url=f"sqlite:///{tmp_path / 'k.db'}", data_dir=tmp_path)
    rt = await open_runtime(settings, hasher=testing.fast_hasher())
    try:
        await rt.users.add("alice", "a password for the test")
        pair = await rt.sessions.start("alice")
        foreign = sqlite3.connect(tmp_path / "k.db", isolation_level=None, check_same_thread=False)
        foreign.execute("BEGIN IMMEDIATE")  # what a second keyturn process does during its write
        released = threading.Event()

        def release_later() -> None:
            released.wait(30)
            foreign.execute("COMMIT")

        releaser = threading.Thread(target=release_later)
        releaser.start()
        refresh = asyncio.create_task(rt.sessions.refresh(pair.refresh_token))
        # The loop keeps running while the refresh waits for the lock (these sleeps return), and the
        # refresh has not finished: it is waiting, not failed.
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert not refresh.done(), "the refresh cannot have finished while the lock is held"
        released.set()
        rotated = await asyncio.wait_for(refresh, 30)
        releaser.join(30)
        foreign.close()

        assert rotated.session_id == pair.session_id
        assert rotated.refresh_token != pair.refresh_token
        # It was one rotation: the next one goes on from it, and the first token now replays to it.
        assert (await rt.sessions.refresh(pair.refresh_token)).refresh_token == rotated.refresh_token
    finally:
        await rt.close()


async def test_two_stores_on_one_file_act_as_one(tmp_path: Path) -> None:
    """Two stores on one file (as two processes have) see each other's rotations, replays and reuse.

    Real races between processes are in tests/e2e/test_concurrency.py.
    """
    url = f"sqlite:///{tmp_path / 'k.db'}"
    settings = testing.make_settings(store_url=url, data_dir=tmp_path)
    first = await open_runtime(settings, hasher=testing.fast_hasher())
    second = await open_runtime(settings, hasher=testing.fast_hasher())
    try:
        await first.users.add("alice", "a password for the test")
        pair = await first.sessions.start("alice")
        calls = [rt.sessions.refresh(pair.refresh_token) for _ in range(25) for rt in (first, second)]
        answers = await asyncio.gather(*calls)
        assert len({a.refresh_token for a in answers}) == 1
        session = await second.store.get_session(pair.session_id)
        assert session is not None
        assert session.state == "active"
        assert session.gen == 1
        # And a reuse seen by one store is seen by the other.
        later = testing.FrozenClock(first.sessions.clock.now() + settings.grace_period + 1)
        first.sessions.clock = later
        with pytest.raises(RefreshTokenReused):
            await first.sessions.refresh(pair.refresh_token)
        revoked = await second.store.get_session(pair.session_id)
        assert revoked is not None
        assert revoked.state == "revoked"
    finally:
        await first.close()
        await second.close()
