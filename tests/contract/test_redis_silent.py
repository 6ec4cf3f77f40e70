"""A Redis that stops answering: every call of the store still ends, in time, and no late reply is misread.

The store's client has no socket timeout of its own; each call is bounded by ``guarded()`` (the store's
``REPLY_TIMEOUT``). Here a real relay stands between the store and the real Redis and can stall: it keeps
passing the store's commands on, but holds Redis's replies until it is resumed, when they all arrive late.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from keyturn.errors import StoreUnavailable
from keyturn.ratelimit import RateLimit
from keyturn.store.redis import RedisStore, _records, _store
from keyturn.store.redis._store import split_url
from keyturn.typing import RefreshRecord, SessionRecord

from ._relay import BOUND, Relay
from .backends import _redis_prefix

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("short_bound")]

LIMIT = RateLimit(10, 60.0)
NOW = 1_800_000_000.0
IN_TIME = BOUND + 4
"""A call bounded by ``BOUND`` has ended within this many seconds: 4 s over it for a stalled machine, still
under the store's own 6 s ``REPLY_TIMEOUT`` (a call that ignored the cut bound) and far from "never"."""


async def test_opening_a_store_on_a_server_that_does_not_answer_fails_in_time() -> None:
    relay = Relay()
    relay.stall()
    async with relay.running():
        store = RedisStore.from_url(relay.url("kt-test:never-written:"))
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.open()
        assert time.monotonic() - started < IN_TIME


async def test_calls_to_a_stalled_server_fail_in_time_and_their_late_replies_are_not_read_as_answers() -> (
    None
):
    relay = Relay()
    with _redis_prefix() as place:  # its keys are deleted afterwards
        await _stall_and_resume(relay, split_url(place)[1])


async def _stall_and_resume(relay: Relay, prefix: str) -> None:
    async with relay.running():
        store = RedisStore.from_url(relay.url(prefix))
        await store.open()
        try:
            head = RefreshRecord("known-h", "known", 0, "rk", int(NOW), int(NOW) + 1000)
            await store.create_session(
                SessionRecord("known", "alice", NOW, NOW + 5000, head.jti, 0, NOW), head
            )
            relay.stall()
            # A plain command and a script (the refresh path's kind of call): each would wait forever.
            calls: list[Callable[[], Awaitable[object]]] = [
                lambda: store.get_session("no-such-session"),
                lambda: store.rate_limit_take("k", LIMIT, time.time()),
            ]
            for call in calls:
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    await call()
                assert time.monotonic() - started < IN_TIME
            relay.resume()  # the held replies arrive now; a connection that timed out must not read them
            found = await store.get_session("known")
            assert found is not None
            assert found.sid == "known"
            assert await store.get_session("no-such-session") is None
        finally:
            await store.close()


async def test_a_reply_later_than_redis_py_s_own_default_timeout_but_within_the_bound_is_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bound is the store's alone: redis-py's default socket timeout (5 s) is off."""
    monkeypatch.setattr(_records, "REPLY_TIMEOUT", 7.0)
    monkeypatch.setattr(_store, "REPLY_TIMEOUT", 7.0)
    relay = Relay()
    with _redis_prefix() as place:
        async with relay.running():
            store = RedisStore.from_url(relay.url(split_url(place)[1]))
            await store.open()
            try:
                relay.stall()
                calls = asyncio.gather(store.get_session("none"), store.rate_limit_take("k", LIMIT, NOW))
                await asyncio.sleep(5.5)
                relay.resume()
                found, taken = await calls
                assert found is None
                assert taken.allowed
            finally:
                await store.close()
