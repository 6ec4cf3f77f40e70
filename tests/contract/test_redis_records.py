"""A session hash in Redis that this Keyturn cannot read makes a refresh fail as an outage
(``StoreUnavailable``: 503 ``server_error``), never a crash deep in the decoding, and changes nothing."""

from __future__ import annotations

import pytest

from keyturn.errors import StoreUnavailable
from keyturn.store.redis import RedisStore
from keyturn.typing import RefreshRecord, Rotate, SessionRecord

from .backends import _redis_prefix, raw_redis, require_server

pytestmark = pytest.mark.anyio
NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("field", "value"),
    [("gen", "not-a-number"), ("sub", None), ("claims", "{not json"), ("head_jti", None)],
    ids=["bad gen", "no sub", "bad claims", "no head"],
)
async def test_an_unreadable_session_fails_its_refresh_as_an_outage(field: str, value: str | None) -> None:
    require_server("redis")
    with _redis_prefix() as url, raw_redis(url) as (raw, prefix):
        store = RedisStore.from_url(url)
        await store.open()
        try:
            head = RefreshRecord("h1", "s1", 0, "rk", int(NOW), int(NOW) + 1000)
            await store.create_session(SessionRecord("s1", "alice", NOW, NOW + 5000, "h1", 0, NOW), head)
            key = f"{prefix}s:s1"
            if value is None:
                raw.hdel(key, field)
            else:
                raw.hset(key, field, value)
            before = raw.hgetall(key)
            new = RefreshRecord("h2", "s1", 1, "rk", int(NOW) + 1, int(NOW) + 1001)
            with pytest.raises(StoreUnavailable, match="cannot read"):
                await store.refresh("s1", "h1", lambda s, p: Rotate(new, NOW + 1, NOW - 30))
            assert raw.hgetall(key) == before
        finally:
            await store.close()
