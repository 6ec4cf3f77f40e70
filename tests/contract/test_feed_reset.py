"""The feed's head, and a reader whose cursor is past it: a store that was reset (every backend)."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyturn.revocation import FeedPage, read_feed
from keyturn.typing import Backend, RefreshRecord, SessionRecord

from .backends import BackendUnderTest, isolated

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


async def revoke(store: Backend, sid: str, expires_at: float = NOW + 100) -> None:
    head = RefreshRecord(f"{sid}-h", sid, 0, "rk", int(NOW), int(NOW) + 1000)
    await store.create_session(SessionRecord(sid, "alice", NOW, NOW + 5000, head.jti, 0, NOW), head)
    assert await store.revoke_session(sid, "logout", NOW, expires_at)


async def test_the_head_is_the_newest_number_ever_given_pruned_or_not(store: Backend) -> None:
    assert await store.revocation_head() == 0
    await revoke(store, "s1")
    await revoke(store, "s2")
    await store.revoke_access_token("jti-x", NOW + 10)
    newest = (await store.revocations_since(0, NOW))[-1].seq
    assert await store.revocation_head() == newest

    assert await store.prune(NOW + 10_000) > 0  # every entry has expired and gone
    assert await store.revocations_since(0, NOW + 10_000) == []
    assert await store.revocation_head() == newest


async def test_a_reader_past_a_reset_store_reads_it_from_the_start(
    backend: BackendUnderTest, store: Backend, tmp_path: Path
) -> None:
    for sid in ("s1", "s2", "s3"):
        await revoke(store, sid)
    cursor = (await read_feed(store, 0, NOW, 100)).last_seq
    assert await read_feed(store, cursor, NOW, 100) == FeedPage([], cursor, False)  # nothing new

    with isolated(backend.name, tmp_path / "reset") as place:  # the same backend, begun again
        fresh = place.new_store()
        await fresh.open()
        try:
            assert await read_feed(fresh, cursor, NOW, 100) == FeedPage([], 0, False)
            await revoke(fresh, "after")
            page = await read_feed(fresh, cursor, NOW, 100)
            assert [e.value for e in page.entries] == ["after"]
            assert page.last_seq == page.entries[0].seq < cursor
            assert await read_feed(fresh, page.last_seq, NOW, 100) == FeedPage([], page.last_seq, False)
            # A full page after the reset says so: the reader goes on at once.
            await revoke(fresh, "after-2")
            assert (await read_feed(fresh, cursor, NOW, 1)).more is True
        finally:
            await fresh.close()
