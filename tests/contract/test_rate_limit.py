"""``rate_limit_take`` on every backend: the same GCRA answers, atomic under real concurrency, pruned."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from keyturn.ratelimit import RateLimit
from keyturn.store import MemoryStore, SQLiteStore, open_store
from keyturn.typing import (
    Backend,
    Decide,
    Limited,
    RateLimitTake,
    RefreshDecision,
    RefreshRecord,
    Replay,
    Reuse,
    Rotate,
    SessionRecord,
)

from ._races import at_once, in_processes
from .backends import REDIS_URL, SHARED_BACKENDS, BackendUnderTest, isolated

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


async def takes(store: Backend, key: str, limit: RateLimit, now: float, n: int) -> list[bool]:
    return [(await store.rate_limit_take(key, limit, now)).allowed for _ in range(n)]


async def test_a_bucket_takes_count_at_once_then_one_per_interval(store: Backend) -> None:
    """``COUNT/SECONDS``: the burst at once, then exactly one call per ``SECONDS / COUNT``."""
    limit = RateLimit(5, 10)  # one every 2 s
    assert await takes(store, "k", limit, NOW, 5) == [True] * 5

    refused = await store.rate_limit_take("k", limit, NOW)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(2.0)
    later = await store.rate_limit_take("k", limit, NOW + 0.5)
    assert (later.allowed, later.retry_after) == (False, pytest.approx(1.5))

    assert await takes(store, "k", limit, NOW + 2, 2) == [True, False]
    assert await takes(store, "k", limit, NOW + 7.9, 3) == [True, True, False]


async def test_a_refused_take_spends_nothing(store: Backend) -> None:
    """A client that keeps knocking while refused must not push its own wait further out."""
    limit = RateLimit(2, 60)
    await takes(store, "k", limit, NOW, 2)
    for _ in range(50):
        refused = await store.rate_limit_take("k", limit, NOW + 10)
        assert (refused.allowed, refused.retry_after) == (False, pytest.approx(20.0))
    assert (await store.rate_limit_take("k", limit, NOW + 30)).allowed


async def test_a_bucket_left_alone_for_its_period_is_full_again(store: Backend) -> None:
    """After ``SECONDS`` without a call the whole burst is back, and no more than that."""
    limit = RateLimit(3, 6)
    await takes(store, "k", limit, NOW, 3)
    assert await takes(store, "k", limit, NOW + 6, 4) == [True, True, True, False]
    assert await takes(store, "k", limit, NOW + 600, 4) == [True, True, True, False]


async def test_buckets_of_different_keys_are_independent(store: Backend) -> None:
    """One address's flood must not spend another's budget."""
    limit = RateLimit(2, 60)
    assert await takes(store, "refresh_per_ip:192.0.2.1", limit, NOW, 3) == [True, True, False]
    assert await takes(store, "refresh_per_ip:192.0.2.2", limit, NOW, 2) == [True, True]
    assert await takes(store, "refresh_per_session:s1", limit, NOW, 2) == [True, True]


async def test_the_same_key_under_a_stricter_limit_is_judged_by_that_limit(store: Backend) -> None:
    """A bucket holds a time, not a count: a limit changed by a restart applies to it at once."""
    await takes(store, "k", RateLimit(100, 100), NOW, 10)  # 10 s ahead of now
    refused = await store.rate_limit_take("k", RateLimit(5, 5), NOW)
    assert (refused.allowed, refused.retry_after) == (False, pytest.approx(6.0))


async def test_fractional_rates_never_let_more_through_than_asked(store: Backend) -> None:
    """3 per second is an interval of 333334 µs (rounded up), kept in integers: no drift across backends."""
    limit = RateLimit(3, 1)
    allowed = 0
    for step in range(301):  # 30 s in 0.1 s steps
        allowed += sum(await takes(store, "k", limit, NOW + step / 10, 2))
    assert allowed == 3 + 89  # the burst, then one per 333334 µs over 30 s


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
async def pruned(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[BackendUnderTest, Backend]]:
    """A backend whose buckets prune deletes (Redis's expire by TTL) and an open store on it."""
    with isolated(request.param, tmp_path) as place:
        store = place.new_store()
        await store.open()
        try:
            yield place, store
        finally:
            await store.close()


async def test_prune_deletes_full_buckets_and_keeps_filling_ones(
    pruned: tuple[BackendUnderTest, Backend],
) -> None:
    """Buckets must not pile up: one per address that ever called would grow without end."""
    place, store = pruned
    limit = RateLimit(10, 100)  # one per 10 s
    await takes(store, "short", limit, NOW, 1)  # full again at NOW + 10
    await takes(store, "long", limit, NOW, 10)  # full again at NOW + 100

    await store.prune(NOW + 50)

    assert await buckets(place, store) == {"long"}
    # "long" kept its state: half refilled, 5 calls and no more; then full again at NOW + 150.
    assert await takes(store, "long", limit, NOW + 50, 6) == [True] * 5 + [False]
    await store.prune(NOW + 149)
    assert await buckets(place, store) == {"long"}
    await store.prune(NOW + 150)
    assert await buckets(place, store) == set()
    assert await takes(store, "long", limit, NOW + 150, 11) == [True] * 10 + [False]


async def test_redis_buckets_expire_when_they_are_full_again(tmp_path: Path) -> None:
    """Redis drops a bucket by itself once it is full again (its TTL), so prune need not look at them."""
    import redis

    limit = RateLimit(10, 100)  # one per 10 s
    with isolated("redis", tmp_path) as place:
        store = place.new_store()
        await store.open()
        try:
            await takes(store, "short", limit, NOW, 1)
            await takes(store, "long", limit, NOW, 10)
            await store.rate_limit_take("long", limit, NOW)  # refused: writes nothing, the TTL stays
        finally:
            await store.close()
        prefix = parse_qs(urlsplit(place.url).query)["prefix"][0] + "rl:"
        client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        try:
            ttls = {
                key.removeprefix(prefix): client.pttl(key) for key in client.scan_iter(match=f"{prefix}*")
            }
        finally:
            client.close()
    assert set(ttls) == {"short", "long"}
    assert 5_000 < ttls["short"] <= 10_000
    assert 95_000 < ttls["long"] <= 100_000


async def buckets(place: BackendUnderTest, store: Backend) -> set[str]:
    """The rate-limit keys a store holds."""
    if isinstance(store, MemoryStore):
        return set(store._buckets)
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as conn:
            return {key for (key,) in conn.execute("SELECT key FROM rate_limits")}
    import psycopg

    from keyturn.store.postgres import conninfo_from_url

    conn = await psycopg.AsyncConnection.connect(conninfo_from_url(place.url))
    async with conn:
        cur = await conn.execute("SELECT key FROM rate_limits")
        return {key for (key,) in await cur.fetchall()}


CALLERS = 4
PER_CALLER = 80
ALLOWED = 50


async def test_concurrent_takes_from_many_stores_let_exactly_the_burst_through(
    backend: BackendUnderTest, store: Backend
) -> None:
    """320 calls at one instant, from four stores on their own threads (their own connections, as four
    processes would have): exactly 50 pass, whatever the interleaving."""
    limit = RateLimit(ALLOWED, 3600)

    async def take(peer: Backend, n: int) -> bool:
        return (await peer.rate_limit_take("crowd", limit, NOW)).allowed

    answers = await at_once(backend, store, take, threads=CALLERS, per_thread=PER_CALLER)

    assert Counter(answers) == {True: ALLOWED, False: CALLERS * PER_CALLER - ALLOWED}
    refused = await store.rate_limit_take("crowd", limit, NOW)
    assert (refused.allowed, refused.retry_after) == (False, pytest.approx(3600 / ALLOWED))


PROCESSES = 4
PER_PROCESS = 30


async def _take(store: Backend, n: int) -> bool:
    return (await store.rate_limit_take("crowd", RateLimit(ALLOWED, 3600), NOW)).allowed


@pytest.mark.parametrize("shared", SHARED_BACKENDS)
async def test_takes_from_several_processes_let_exactly_the_burst_through(
    shared: str, tmp_path: Path
) -> None:
    """Real processes, each with its own store, take from one bucket at the same moment: exactly 50 pass."""
    with isolated(shared, tmp_path) as place:
        first = open_store(place.url)
        await first.open()  # the schema, once: the processes then race on the bucket alone
        try:
            answers = in_processes(place.url, _take, processes=PROCESSES, per_process=PER_PROCESS)
            assert Counter(answers) == {True: ALLOWED, False: PROCESSES * PER_PROCESS - ALLOWED}
            assert not (await first.rate_limit_take("crowd", RateLimit(ALLOWED, 3600), NOW)).allowed
        finally:
            await first.close()


# -- takes as part of a refresh ---------------------------------------------------------------------------


def _session(sid: str = "s1") -> tuple[SessionRecord, RefreshRecord]:
    head = RefreshRecord(f"{sid}-h0", sid, 0, "rk", int(NOW), int(NOW) + 1000)
    return SessionRecord(sid, "alice", NOW, NOW + 5000, head.jti, 0, NOW), head


def _rotate(n: int, sid: str = "s1") -> Decide:
    """A decision that rotates the head (or replays, once it has moved), like ``decide_refresh``."""

    def decide(session: SessionRecord | None, presented: RefreshRecord | None) -> RefreshDecision:
        assert session is not None
        if presented is not None and presented.jti == session.head_jti:
            return Rotate(
                RefreshRecord(f"{sid}-new{n}", sid, session.gen + 1, "rk", int(NOW), int(NOW) + 1000), NOW
            )
        return Replay(NOW)

    return decide


async def test_a_refresh_takes_first_and_a_refusal_stops_everything_after_it(store: Backend) -> None:
    """A refresh's takes come before anything is read; the one that refuses leaves the session as it was,
    keeps the takes before it, and makes none after it."""
    session, head = _session()
    await store.create_session(session, head)
    address = RateLimitTake("refresh_per_ip:192.0.2.1", RateLimit(10, 60), NOW)
    per_session = RateLimitTake("refresh_per_session:s1", RateLimit(1, 60), NOW)
    after = RateLimitTake("never", RateLimit(1, 60), NOW)

    first = await store.refresh("s1", head.jti, _rotate(1), [address, per_session, after])
    assert isinstance(first.decision, Rotate)
    assert first.session is not None
    assert first.session.head_jti == "s1-new1"
    # The last take was spent by that call: a second call of its own is refused.
    assert not (await store.rate_limit_take("never", RateLimit(1, 60), NOW)).allowed

    def never(session: SessionRecord | None, presented: RefreshRecord | None) -> RefreshDecision:
        raise AssertionError("a refused refresh must not read or decide anything")

    refused = await store.refresh("s1", "s1-new1", never, [address, per_session, after])
    assert refused.decision == Limited(per_session, pytest.approx(60.0))
    assert (refused.session, refused.head) == (None, None)
    assert (await store.get_session("s1")) == first.session
    # The address's take stood (2 of 10 spent); the one after the refusal was not made.
    assert await takes(store, "refresh_per_ip:192.0.2.1", RateLimit(10, 60), NOW, 9) == [True] * 8 + [False]
    assert (await store.rate_limit_take("never", RateLimit(1, 60), NOW + 60)).allowed


async def test_a_refused_refresh_of_a_reused_token_revokes_nothing(store: Backend) -> None:
    """Even a decision that would revoke the session is never reached when a take refuses."""
    session, head = _session()
    await store.create_session(session, head)
    limit = RateLimitTake("refresh_per_session:s1", RateLimit(1, 600), NOW)
    await store.rate_limit_take(limit.key, limit.limit, NOW)

    def reuse(session: SessionRecord | None, presented: RefreshRecord | None) -> RefreshDecision:
        return Reuse(NOW, NOW + 900)

    outcome = await store.refresh("s1", head.jti, reuse, [limit])
    assert isinstance(outcome.decision, Limited)
    assert (await store.get_session("s1")) == session
    assert await store.revocations_since(0, NOW) == []


REFRESHERS = 4
PER_REFRESHER = 30
SESSION_BURST = 20


async def test_concurrent_refreshes_of_one_session_pass_exactly_the_burst(
    backend: BackendUnderTest, store: Backend
) -> None:
    """120 refreshes of one session at once, from four stores on their own threads, under a per-session
    limit of 20: exactly 20 go ahead (one rotation, the rest replays) and 100 are refused, untouched.
    Redis reads again when the session changed under it: it must not take again."""
    session, head = _session()
    await store.create_session(session, head)
    limit = RateLimit(SESSION_BURST, 3600)

    async def one(peer: Backend, n: int) -> str:
        take = RateLimitTake("refresh_per_session:s1", limit, NOW)
        outcome = await peer.refresh("s1", head.jti, _rotate(n), [take])
        return type(outcome.decision).__name__

    kinds = await at_once(backend, store, one, threads=REFRESHERS, per_thread=PER_REFRESHER)

    total = REFRESHERS * PER_REFRESHER
    assert Counter(kinds) == {"Rotate": 1, "Replay": SESSION_BURST - 1, "Limited": total - SESSION_BURST}
    after = await store.get_session("s1")
    assert after is not None
    assert (after.state, after.gen) == ("active", 1)
