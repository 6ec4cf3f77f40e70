"""What a fixed run of refreshes leaves in a store, and how long an in-process refresh takes.

    python bench/storage.py                      # SQLite, in a temporary file
    python bench/storage.py --store URL [URL …]  # postgresql://… (tables in the URL's current schema, which
                                                 # should be empty) or redis://…?prefix=… (an unused prefix)

Starts ``--sessions`` sessions and refreshes each ``--refreshes`` times through ``SessionService.refresh``
(tokens signed and verified, no HTTP, rate limits off), one second apart on a frozen clock; then prints the
p50 and p99 of those calls and what the store holds: rows (SQLite, PostgreSQL) or keys (Redis) and bytes
(the SQLite file and its log, PostgreSQL's tables with their indexes, Redis's ``MEMORY USAGE`` of the keys).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from keyturn.clock import FrozenClock
from keyturn.store import open_store
from keyturn.testing import make_service, make_settings

TABLES = ("sessions", "refresh_tokens", "revocations")


def held(url: str) -> tuple[int, int]:
    """Rows or keys, and bytes, that sessions and refresh records take in the store at ``url``."""
    if url.startswith("sqlite"):
        import sqlite3

        path = Path(url.removeprefix("sqlite:///"))
        with sqlite3.connect(path) as conn:
            names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            rows = sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES if t in names)  # noqa: S608
        wal = path.with_name(path.name + "-wal")
        return rows, path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    if url.startswith("postgres"):
        import psycopg

        from keyturn.store.postgres import conninfo_from_url

        with psycopg.connect(conninfo_from_url(url)) as conn:
            rows = size = 0
            for t in TABLES:
                if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone() == (None,):
                    continue
                rows += conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]  # noqa: S608
                size += conn.execute("SELECT pg_total_relation_size(%s::regclass)", (t,)).fetchone()[0]  # type: ignore[index]
            return rows, size
    import redis

    prefix = parse_qs(urlsplit(url).query)["prefix"][0]
    client: Any = redis.Redis.from_url(url.split("?")[0], decode_responses=True)
    try:
        keys = [k for k in client.scan_iter(match=f"{prefix}*", count=1000) if ":rl:" not in k]
        return len(keys), sum(client.memory_usage(k) or 0 for k in keys)
    finally:
        client.close()


async def measure(url: str, sessions: int, refreshes: int) -> None:
    store = open_store(url)
    await store.open()
    try:
        clock = FrozenClock()
        ts = await make_service(make_settings(rate_limits="off"), clock=clock, store=store)
        tokens = [(await ts.service.start(f"user{i}")).refresh_token for i in range(sessions)]
        times = []
        for _ in range(refreshes):
            clock.advance(1)
            for i, token in enumerate(tokens):
                started = time.perf_counter()
                tokens[i] = (await ts.service.refresh(token)).refresh_token
                times.append(time.perf_counter() - started)
    finally:
        await store.close()
    rows, size = held(url)
    cuts = statistics.quantiles(times, n=100)
    print(
        f"{url.partition(':')[0]:<10}  {sessions} sessions x {refreshes} refreshes: "
        f"p50 {cuts[49] * 1000:.3f} ms  p99 {cuts[98] * 1000:.3f} ms  held {rows} rows/keys, {size} bytes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", nargs="+", metavar="URL", help="stores to measure (default: SQLite)")
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--refreshes", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keyturn-storage-") as tmp:
        for url in args.store or [f"sqlite:///{Path(tmp) / 'storage.db'}"]:
            asyncio.run(measure(url, args.sessions, args.refreshes))


if __name__ == "__main__":
    main()
