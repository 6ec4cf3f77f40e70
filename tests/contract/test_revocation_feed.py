"""The revocation feed under concurrent writers: a poller that follows it misses nothing."""

from __future__ import annotations

import asyncio
import threading

import pytest

from keyturn.typing import Backend, RefreshRecord, SessionRecord

from .backends import BackendUnderTest

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
WRITERS = 4
PER_WRITER = 60


def _session(sid: str) -> tuple[SessionRecord, RefreshRecord]:
    head = RefreshRecord(f"{sid}-h", sid, 0, "rk", int(NOW), int(NOW) + 1000)
    return SessionRecord(sid, "alice", NOW, NOW + 5000, head.jti, 0, NOW), head


async def test_a_poller_sees_every_revocation_made_by_concurrent_writers(
    backend: BackendUnderTest, store: Backend
) -> None:
    """Validators poll "revocations since N"; a sequence number made visible out of order would be
    skipped for good, and a revoked session would stay usable on that validator."""
    sids = [f"w{w}-s{i}" for w in range(WRITERS) for i in range(PER_WRITER)]
    for sid in sids:
        await store.create_session(*_session(sid))

    seen: list[str] = []
    stop = threading.Event()

    async def poll(reader: Backend) -> None:
        last = 0
        while True:
            done = stop.is_set()  # read before the batch: once set, every write has finished
            batch = await reader.revocations_since(last, NOW, limit=50)
            for entry in batch:
                assert entry.seq > last
                last = entry.seq
                seen.append(entry.value)
            if done and not batch:
                return
            await asyncio.sleep(0)

    if backend.shared is not None:
        # memory:// never awaits inside a call, so writers and poller interleave only between calls.
        poller = asyncio.create_task(poll(store))
        await asyncio.gather(*(store.revoke_session(sid, "logout", NOW, NOW + 900) for sid in sids))
        stop.set()
        await poller
    else:

        def in_thread(work: str, index: int = 0) -> None:
            async def run() -> None:
                peer = backend.new_store()
                await peer.open()
                try:
                    if work == "poll":
                        await poll(peer)
                    else:
                        mine = sids[index * PER_WRITER : (index + 1) * PER_WRITER]
                        await asyncio.gather(
                            *(peer.revoke_session(sid, "logout", NOW, NOW + 900) for sid in mine)
                        )
                finally:
                    await peer.close()

            asyncio.run(run())

        poller_thread = threading.Thread(target=in_thread, args=("poll",))
        poller_thread.start()
        writers = [threading.Thread(target=in_thread, args=("write", i)) for i in range(WRITERS)]
        for t in writers:
            t.start()
        for t in writers:
            t.join(120)
        stop.set()
        poller_thread.join(120)
        assert not poller_thread.is_alive()

    assert sorted(seen) == sorted(sids)
