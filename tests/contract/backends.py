"""Isolated places of every backend, for the contract suite and the multi-process tests.

PostgreSQL and Redis are the real servers on this machine (``.ci/run`` starts them if they are down);
``KEYTURN_TEST_POSTGRES_URL`` and ``KEYTURN_TEST_REDIS_URL`` point elsewhere. Each test gets its own
PostgreSQL schema or Redis key prefix, removed afterwards. Where one of them cannot be reached its tests
are skipped with the reason, except in CI (``CI`` set), where they fail: CI must run every backend.
``pgbouncer`` is PostgreSQL through a PgBouncer in transaction mode of the test's own (``_bouncer``), for
the contract suite's ``backend`` fixture.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from keyturn.store import MemoryStore, open_store
from keyturn.typing import Backend

BACKENDS = ("memory", "sqlite", "postgresql", "redis")
SHARED_BACKENDS = ("sqlite", "postgresql", "redis")
"""The backends several processes can share."""

POSTGRES_URL = os.environ.get("KEYTURN_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/keyturn_test")
REDIS_URL = os.environ.get("KEYTURN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class BackendUnderTest:
    """One isolated place to keep state in, and stores opened on it."""

    name: str
    url: str
    """A store URL for this test's own place (``memory://`` has no place that outlives a store)."""
    shared: MemoryStore | None = None
    direct: str | None = None
    """``pgbouncer``: a store URL for the same schema, on PostgreSQL directly (``url`` goes through it)."""

    def new_store(self) -> Backend:
        """Another store on the same state, as another process would open (memory: the same store)."""
        if self.shared is not None:
            return self.shared
        return open_store(self.url)


def _with_query(url: str, name: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{name}={quote(value)}"


def _ensure_postgres_database() -> None:
    """Create the test database once if it is missing (trust auth, as on this machine and in CI); several
    workers may try at once on a fresh server."""
    import psycopg
    from psycopg import sql

    base, _, dbname = POSTGRES_URL.rpartition("/")
    dbname = dbname.split("?")[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if found is None:
            # another pytest-xdist worker may create it between the look and the create
            with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


@functools.cache
def _unreachable(name: str) -> str | None:
    """Why the server behind backend ``name`` cannot be used, or ``None`` (asked once per run)."""
    if name == "postgresql":
        import psycopg

        try:
            psycopg.connect(f"{POSTGRES_URL.rpartition('/')[0]}/postgres", connect_timeout=3).close()
        except (OSError, psycopg.Error) as exc:
            return _reason(name, POSTGRES_URL, "KEYTURN_TEST_POSTGRES_URL", exc)
        return None
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except (OSError, redis.RedisError) as exc:
        return _reason(name, REDIS_URL, "KEYTURN_TEST_REDIS_URL", exc)
    finally:
        client.close()
    return None


def _reason(name: str, url: str, variable: str, exc: Exception) -> str:
    return f"{name} is not reachable at {url} ({type(exc).__name__}); start it or set {variable}"


def require_server(name: str) -> None:
    """Skip the test (fail it in CI) when backend ``name`` needs a server that is not there."""
    reason = _unreachable(name)
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI runs every backend, but {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def postgres_schema() -> Iterator[tuple[str, str]]:
    """A schema of its own in the test database, dropped afterwards: its name, and a store URL in it."""
    import psycopg
    from psycopg import sql

    _ensure_postgres_database()
    schema = f"Kt_{secrets.token_hex(6)}"  # a capital: the store must take its schema's name as it is
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield schema, _with_query(POSTGRES_URL, "options", f'-csearch_path="{schema}"')
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@contextlib.contextmanager
def raw_redis(url: str) -> Iterator[tuple[Any, str]]:
    """A plain redis-py client (``decode_responses``) on the test Redis, and the key prefix of the store at
    ``url``: for tests that write or count keys the way an older Keyturn left them."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        yield client, parse_qs(urlsplit(url).query)["prefix"][0]
    finally:
        client.close()


@contextlib.contextmanager
def _redis_prefix() -> Iterator[str]:
    import redis

    prefix = f"kt-test:{secrets.token_hex(6)}:"
    try:
        yield _with_query(REDIS_URL, "prefix", prefix)
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@contextlib.contextmanager
def isolated(name: str, tmp_path: Path) -> Iterator[BackendUnderTest]:
    """A place of backend ``name`` of its own, removed afterwards."""
    if name == "memory":
        yield BackendUnderTest(name, "memory://", shared=MemoryStore())
    elif name == "sqlite":
        yield BackendUnderTest(name, f"sqlite:///{tmp_path / 'contract.db'}")
    elif name == "postgresql":
        require_server(name)
        with postgres_schema() as (_, url):
            yield BackendUnderTest(name, url)
    elif name == "redis":
        require_server(name)
        with _redis_prefix() as url:
            yield BackendUnderTest(name, url)
    elif name == "pgbouncer":  # PostgreSQL through a PgBouncer in transaction mode of its own
        from ._bouncer import bouncer

        with bouncer() as running:
            yield BackendUnderTest(name, running.url, direct=running.direct)
    else:
        raise ValueError(name)
