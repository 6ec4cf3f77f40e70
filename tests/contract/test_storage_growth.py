"""Storage grows with sessions, not with refreshes (issue 21), on every backend.

In-process store calls with the service's own decision (``decide_refresh``), no HTTP: a session refreshed
10,000 times holds exactly the records (rows, keys and index members) it held after its first refresh, and
1,000 sessions refreshed 100 times each hold what 1,000 sessions hold after one refresh each.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from keyturn.sessions import RefreshPolicy, decide_refresh
from keyturn.testing import make_settings
from keyturn.tokens import RefreshClaims
from keyturn.typing import Backend, RefreshRecord, Rotate, SessionRecord

from .backends import BackendUnderTest
from .test_prune import footprint

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
STEP = 60.0  # seconds between two refreshes of a session: past the grace period, as a client does
POLICY = RefreshPolicy.from_settings(make_settings())
SQLITE_FILE_BOUND = 96 * 1024
"""Bytes the SQLite database file may take for one session, however often it was refreshed: mostly the
schema (a page or two per table and index: 17 pages with the OAuth clients and DPoP proofs)."""
SQLITE_WAL_BOUND = 1001 * (4096 + 24) + 32
"""The write-ahead log until SQLite's automatic checkpoint (1,000 pages of 4 KiB, frame headers, header)."""


@pytest.fixture(autouse=True)
def _not_through_a_pooler(backend: BackendUnderTest) -> None:
    if backend.name == "pgbouncer":
        pytest.skip("what a store holds does not depend on a pooler: the postgresql run measures it")


async def start(store: Backend, sid: str) -> RefreshRecord:
    head = RefreshRecord(f"{sid}-0", sid, 0, "rk", int(NOW), int(NOW) + POLICY.refresh_idle_lifetime)
    session = SessionRecord(sid, "alice", NOW, NOW + 60 * 86_400, head.jti, 0, NOW)
    await store.create_session(session, head)
    return head


async def refresh(store: Backend, head: RefreshRecord, now: float) -> RefreshRecord:
    """One refresh of ``head``'s token, decided as the service decides it; the new head."""
    claims = RefreshClaims("alice", head.sid, head.jti, head.gen, head.issued_at, head.expires_at, head.kid)
    new_jti = f"{head.sid}-{head.gen + 1}"

    def decide(session: SessionRecord | None, presented: RefreshRecord | None) -> Rotate:
        decision = decide_refresh(session, presented, claims, now, POLICY, new_jti=new_jti, new_kid="rk")
        assert isinstance(decision, Rotate), decision
        return decision

    outcome = await store.refresh(head.sid, head.jti, decide)
    assert outcome.head is not None
    return outcome.head


def sqlite_sizes(backend: BackendUnderTest) -> tuple[int, int]:
    """The database file's size once the log is written back into it, and the log's size before."""
    path = Path(backend.url.removeprefix("sqlite:///"))
    wal = path.with_name(path.name + "-wal")
    logged = wal.stat().st_size if wal.exists() else 0
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size, logged


async def test_a_session_refreshed_10000_times_holds_what_it_held_after_one(
    backend: BackendUnderTest, store: Backend
) -> None:
    """A session's footprint after 10,000 refreshes is its footprint after the first, record for record;
    the SQLite file keeps its size and stays under a fixed bound, its log under the checkpoint's."""
    head = await refresh(store, await start(store, "s"), NOW + STEP)
    after_one = await footprint(backend, store)
    file_after_one = sqlite_sizes(backend)[0] if backend.name == "sqlite" else 0

    for n in range(2, 10_001):
        head = await refresh(store, head, NOW + n * STEP)

    assert head.gen == 10_000
    assert await footprint(backend, store) == after_one
    if backend.name == "sqlite":
        size, wal = sqlite_sizes(backend)
        assert size == file_after_one
        assert size <= SQLITE_FILE_BOUND
        assert wal <= SQLITE_WAL_BOUND


SESSIONS = 1_000
REFRESHES = 100
AT_ONCE = 20  # sessions refreshed concurrently (a pool's worth of connections)
PER_SESSION = {"memory": 2, "sqlite": 1, "postgresql": 1, "redis": 4}
"""What one session holds: memory its record and its chain; SQL one row; Redis its hash and its entries in
the indexes of every session, of sessions by end, and of its subject's sessions."""
BESIDES = {"redis": 1}
"""What a store holds besides its sessions: Redis its schema version."""


async def test_1000_sessions_refreshed_100_times_hold_1000_sessions_worth(
    backend: BackendUnderTest, store: Backend
) -> None:
    """The footprint after 100 refreshes of each of 1,000 sessions is the one after their first."""
    heads = [await start(store, f"s{i}") for i in range(SESSIONS)]

    async def refresh_all(times: range) -> None:
        async def worker(first: int) -> None:
            for i in range(first, SESSIONS, AT_ONCE):
                for n in times:
                    heads[i] = await refresh(store, heads[i], NOW + n * STEP)

        await asyncio.gather(*(worker(first) for first in range(AT_ONCE)))

    await refresh_all(range(1, 2))
    after_one = await footprint(backend, store)
    await refresh_all(range(2, REFRESHES + 1))

    assert {head.gen for head in heads} == {REFRESHES}
    assert await footprint(backend, store) == after_one
    assert after_one == SESSIONS * PER_SESSION[backend.name] + BESIDES.get(backend.name, 0)
