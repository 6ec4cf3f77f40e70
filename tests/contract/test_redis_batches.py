"""The Redis store's scripts go to Redis in batches: the calls made while the process is busy are written
together on one connection, each still answered (or failed) on its own.

A real relay between the store and the real Redis counts what the store writes, and can hold replies back
or cut a connection instead of passing its replies on.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.commands.core import AsyncScript

from keyturn.errors import StoreUnavailable
from keyturn.ratelimit import RateLimit
from keyturn.store.redis import RedisStore, _records, _store
from keyturn.store.redis._store import split_url
from keyturn.typing import RefreshRecord, Rotate, SessionRecord

from ._relay import Relay
from .backends import _redis_prefix

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("short_bound")]

LIMIT = RateLimit(1000, 60.0)
NOW = 1_800_000_000.0
CALLS = 48


@pytest.fixture
async def relay() -> object:
    relay = Relay()
    async with relay.running():
        yield relay


@pytest.fixture
async def store(relay: Relay) -> object:
    with _redis_prefix() as place:  # its keys are deleted afterwards
        opened = RedisStore.from_url(relay.url(split_url(place)[1]))
        await opened.open()
        try:
            yield opened
        finally:
            await opened.close()


def _evalshas(relay: Relay) -> int:
    """Scripts the store sent."""
    return sum(data.count(b"EVALSHA") for data in relay.sent)


def _writes(relay: Relay) -> int:
    """Writes of the store's that sent scripts (a new connection's handshake is not counted)."""
    return sum(b"EVALSHA" in data for data in relay.sent)


async def _until_sent(relay: Relay, scripts: int) -> None:
    """Wait until the relay has passed ``scripts`` scripts on (a busy machine may take a while)."""
    deadline = time.monotonic() + 5
    while _evalshas(relay) < scripts:
        assert time.monotonic() < deadline, f"{_evalshas(relay)} of {scripts} scripts sent"
        await asyncio.sleep(0.01)


async def _take(store: RedisStore, key: str) -> bool:
    return (await store.rate_limit_take(key, LIMIT, time.time())).allowed


async def test_concurrent_calls_are_written_together(store: RedisStore, relay: Relay) -> None:
    relay.count()
    taken = await asyncio.gather(*(_take(store, f"k{i}") for i in range(CALLS)))
    assert taken == [True] * CALLS
    assert _evalshas(relay) == CALLS  # each call sent once
    assert _writes(relay) <= 2, f"{CALLS} concurrent calls took {_writes(relay)} writes"


async def test_concurrent_refreshes_take_a_batch_per_step(store: RedisStore, relay: Relay) -> None:
    heads = [RefreshRecord(f"h{i}", f"s{i}", 0, "rk", int(NOW), int(NOW) + 1000) for i in range(CALLS)]
    for head in heads:
        await store.create_session(SessionRecord(head.sid, "alice", NOW, NOW + 5000, head.jti, 0, NOW), head)

    async def refresh(head: RefreshRecord) -> str:
        new = RefreshRecord(f"{head.jti}-next", head.sid, 1, "rk", int(NOW) + 1, int(NOW) + 1001)
        outcome = await store.refresh(head.sid, head.jti, lambda s, p: Rotate(new, NOW + 1, p))
        assert outcome.session is not None
        return outcome.session.head_jti

    relay.count()
    found = await asyncio.gather(*(refresh(head) for head in heads))
    assert found == [f"{head.jti}-next" for head in heads]
    assert _evalshas(relay) == 2 * CALLS  # a read and a rotation each
    assert _writes(relay) <= 4, f"{CALLS} concurrent refreshes took {_writes(relay)} writes"


async def test_more_calls_than_a_batch_holds_go_in_several(store: RedisStore, relay: Relay) -> None:
    from keyturn.store.redis._batches import BATCH_LIMIT

    relay.count()
    many = 3 * BATCH_LIMIT + 5
    taken = await asyncio.gather(*(_take(store, f"k{i}") for i in range(many)))
    assert taken == [True] * many
    assert _evalshas(relay) == many
    assert 4 <= _writes(relay) <= 8


async def test_an_error_reply_fails_its_own_call_only(store: RedisStore, relay: Relay) -> None:
    client = store._open_client()
    failing = client.register_script("return redis.error_reply('a failing script')")
    await client.script_load(failing.script)
    # Never loaded: its first EVALSHA gets NOSCRIPT, and the store loads it and runs it again.
    unloaded = AsyncScript(client, f"return 'loaded again {time.time()}'")
    unloaded.sha = f"{int(unloaded.sha, 16) ^ 1:040x}"  # its real digest, off by one: never in Redis

    async def fails() -> None:
        with pytest.raises(StoreUnavailable):
            await store._run(failing)

    async def reloads() -> object:
        return await store._run(unloaded)

    relay.count()
    before = [_take(store, f"a{i}") for i in range(8)]
    after = [_take(store, f"b{i}") for i in range(8)]
    results = await asyncio.gather(*before, fails(), reloads(), *after)
    assert results[:8] == [True] * 8
    assert results[9].startswith("loaded again")  # type: ignore[union-attr]
    assert results[10:] == [True] * 8
    assert _writes(relay) <= 2  # the batch, then the script loaded again (SCRIPT LOAD is not counted)


async def test_a_caller_giving_up_leaves_its_batch_to_the_others(store: RedisStore, relay: Relay) -> None:
    relay.count()
    relay.stall()
    calls = [asyncio.ensure_future(_take(store, f"k{i}")) for i in range(CALLS)]
    await _until_sent(relay, CALLS)  # the batch is sent; its replies are held
    calls[0].cancel()
    relay.resume()
    assert await asyncio.gather(*calls[1:]) == [True] * (CALLS - 1)
    with pytest.raises(asyncio.CancelledError):
        await calls[0]


async def test_a_connection_lost_mid_batch_fails_every_call_once_and_the_store_recovers(
    store: RedisStore, relay: Relay
) -> None:
    relay.count()
    relay.cut()  # Redis runs the batch; the connection is closed instead of its replies passed on
    results = await asyncio.gather(*(_take(store, f"k{i}") for i in range(CALLS)), return_exceptions=True)
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    assert _evalshas(relay) == CALLS  # nothing sent twice
    relay.cut(False)
    assert await asyncio.gather(*(_take(store, f"k{i}") for i in range(CALLS))) == [True] * CALLS
    assert await store.get_session("no-such-session") is None


async def test_closing_the_store_fails_the_calls_in_flight_at_once(
    store: RedisStore, relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_records, "REPLY_TIMEOUT", 30.0)  # failing by their bound would take this long
    monkeypatch.setattr(_store, "REPLY_TIMEOUT", 30.0)
    relay.count()
    relay.stall()
    sent = [asyncio.ensure_future(_take(store, f"a{i}")) for i in range(8)]
    await _until_sent(relay, 8)  # sent, their replies held
    waiting = [asyncio.ensure_future(_take(store, f"b{i}")) for i in range(8)]
    await asyncio.sleep(0)  # queued, not sent yet
    started = time.monotonic()
    await store.close()
    results = await asyncio.gather(*sent, *waiting, return_exceptions=True)
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    # "At once": well under the 30 s bound they would otherwise fail by, with room for a stalled machine.
    assert time.monotonic() - started < 10
