"""Statements (SQLite) or round trips (PostgreSQL, Redis) one refresh costs a store.

    python bench/store_round_trips.py                      # SQLite, in a temporary file
    python bench/store_round_trips.py --store URL [URL …]  # postgresql://… (a schema of its own: the
                                                           # tables are made in the URL's current schema)
                                                           # or redis://…?prefix=… (keys under the prefix)

Each store call is a rotation of one session, counted with no rate-limit takes and with two, and then with
the subject check of the built-in users too: as a call of its own (``get_user`` first, as a check from
elsewhere is asked) and as ``keyturn serve`` makes it, in the refresh itself (``user=``). SQLite counts
the statements its connection runs (``BEGIN`` and ``COMMIT`` included); PostgreSQL counts the statements
and transaction commands psycopg sends (each one round trip; a busy process sends its concurrent
refreshes' take-and-reads as one statement and their rotations as another, so there too round trips per
refresh only go down); Redis counts the commands redis-py sends
and the scripts (``EVALSHA``) the store's batches send: one refresh alone is one round trip a script; a
busy process sends its concurrent refreshes' scripts together, so round trips per refresh only go down.
The figures are what the store does, not what a server around it adds.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keyturn.ratelimit import RateLimit
from keyturn.store import SQLiteStore, open_store
from keyturn.typing import Backend, RateLimitTake, RefreshRecord, Rotate, SessionRecord, UserRecord

REFRESHES = 5


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *_: object) -> None:
        self.count += 1


def count_postgresql(counter: Counter) -> None:
    import psycopg

    execute, command = psycopg.AsyncCursor.execute, psycopg.AsyncConnection._exec_command

    async def counted_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        counter()
        return await execute(self, *args, **kwargs)

    def counted_command(self: Any, *args: Any, **kwargs: Any) -> Any:  # BEGIN, COMMIT: a generator
        counter()
        return command(self, *args, **kwargs)

    psycopg.AsyncCursor.execute = counted_execute  # type: ignore[method-assign]
    psycopg.AsyncConnection._exec_command = counted_command  # type: ignore[method-assign]


def count_redis(counter: Counter) -> None:
    import redis.asyncio

    execute = redis.asyncio.Redis.execute_command

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        counter()
        return await execute(self, *args, **kwargs)

    redis.asyncio.Redis.execute_command = counted  # type: ignore[method-assign]

    from keyturn.store.redis._batches import Batches

    call = Batches.call

    def counted_call(self: Any, *command: Any) -> Any:
        counter()
        return call(self, *command)

    Batches.call = counted_call  # type: ignore[method-assign]


async def measure(url: str) -> None:
    counter = Counter()
    store: Backend = open_store(url)
    await store.open()
    scheme = url.partition(":")[0]
    if isinstance(store, SQLiteStore):
        assert store._fast is not None
        store._fast.set_trace_callback(counter)
    elif scheme.startswith("postgres"):
        count_postgresql(counter)
    else:
        count_redis(counter)
    try:
        now = time.time()
        sid, jti = secrets.token_hex(8), secrets.token_hex(8)
        head = RefreshRecord(jti, sid, 1, "k", int(now), int(now) + 3600)
        user = f"u{sid}"
        await store.add_user(UserRecord(user, "hash", now))
        await store.create_session(SessionRecord(sid, user, now, now + 86_400, jti, 1, now), head)
        limit = RateLimit(1_000_000, 1)
        for check in ("none", "own call", "in refresh"):
            for takes in [(), (RateLimitTake("a", limit, now), RateLimitTake("b", limit, now))]:
                counts = []
                for _ in range(REFRESHES):
                    new = RefreshRecord(
                        secrets.token_hex(8), sid, head.gen + 1, "k", int(now), int(now) + 3600
                    )
                    decide: Callable[..., Rotate] = lambda *_, new=new: Rotate(new, now)  # noqa: E731
                    counter.count = 0
                    if check == "own call":
                        assert await store.get_user(user) is not None
                    outcome = await store.refresh(
                        sid, head.jti, decide, takes, user=user if check == "in refresh" else None
                    )
                    counts.append(counter.count)
                    assert outcome.head == new, outcome
                    head = new
                print(
                    f"{scheme:<10}  rate-limit takes={len(takes)}  subject check: {check:<10}  "
                    f"per refresh: {sorted(set(counts))}"
                )
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", nargs="+", metavar="URL", help="stores to count (default: SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keyturn-trips-") as tmp:
        for url in args.store or [f"sqlite:///{Path(tmp) / 'trips.db'}"]:
            asyncio.run(measure(url))


if __name__ == "__main__":
    main()
