"""Nothing grows without bound: after many sessions expire, pruning brings the store back to its size."""

from __future__ import annotations

import sqlite3
from urllib.parse import parse_qs, urlsplit

import pytest

from keyturn.store import MemoryStore
from keyturn.typing import Backend, RefreshRecord, Rotate, SessionRecord

from .backends import POSTGRES_URL, REDIS_URL, BackendUnderTest

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
LIFETIME = 1000
NOT_COUNTED = ("signing_keys", "users", "rate_limits", "keyturn_schema_version", "sqlite_sequence")
"""Tables that do not grow with sessions; every other table of the store is counted."""


async def footprint(backend: BackendUnderTest, store: Backend) -> int:
    """Rows (or Redis keys and index members) of everything but keys, users and rate limits: sessions
    (with their refresh chains), revocations, and any table a layout keeps per token."""
    if backend.name == "memory":
        assert isinstance(store, MemoryStore)
        return sum(
            len(getattr(store, name)) for name in ("_sessions", "_chains", "_revocations", "_revoked_jtis")
        )
    if backend.name == "sqlite":
        path = backend.url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return sum(
                conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
                for t in names
                if t not in NOT_COUNTED
            )
    if backend.name in ("postgresql", "pgbouncer"):
        import psycopg

        options = parse_qs(urlsplit(backend.direct or backend.url).query)["options"][0]
        with psycopg.connect(POSTGRES_URL, options=options) as conn:
            names = [
                row[0]
                for row in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                ).fetchall()
            ]
            return sum(
                conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]  # noqa: S608
                for t in names
                if t not in NOT_COUNTED
            )
    import redis

    prefix = parse_qs(urlsplit(backend.url).query)["prefix"][0]
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        total = 0
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            kind = client.type(key)
            total += {"zset": client.zcard, "set": client.scard}.get(kind, lambda _k: 1)(key)
        return total
    finally:
        client.close()


async def churn(store: Backend, tag: str, count: int, start: float) -> None:
    """``count`` sessions that each rotate once; every third is revoked, every fifth revokes a token."""
    for i in range(count):
        sid = f"{tag}-{i}"
        head = RefreshRecord(f"{sid}-0", sid, 0, "rk", int(start), int(start) + LIFETIME)
        await store.create_session(
            SessionRecord(sid, "alice", start, start + LIFETIME, head.jti, 0, start), head
        )
        new = RefreshRecord(f"{sid}-1", sid, 1, "rk", int(start) + 1, int(start) + LIFETIME)
        outcome = await store.refresh(sid, head.jti, lambda s, p, new=new: Rotate(new, start + 1))
        assert isinstance(outcome.decision, Rotate)
        if i % 3 == 0:
            await store.revoke_session(sid, "logout", start + 2, start + 2 + 100)
        if i % 5 == 0:
            await store.revoke_access_token(f"{sid}-access", start + 100)


async def test_pruning_after_many_sessions_expire_brings_the_footprint_back(
    backend: BackendUnderTest, store: Backend
) -> None:
    """A service that runs for months must not keep every session it ever had."""
    await churn(store, "warm", 3, NOW)
    await store.prune(NOW + LIFETIME + 1)
    baseline = await footprint(backend, store)

    await churn(store, "many", 300, NOW + 2 * LIFETIME)
    grown = await footprint(backend, store)
    # A session each (its refresh chain within it: no record per token), a revocation for every third,
    # a revoked access token for every fifth.
    grown_by = 300 + 100 + 60
    assert grown >= baseline + grown_by

    removed = await store.prune(NOW + 4 * LIFETIME)
    assert removed >= grown_by
    assert await footprint(backend, store) == baseline
    assert await store.list_all_sessions(include_revoked=True) == []
