"""Throwaway places on the shared PostgreSQL and Redis servers, removed when the benchmark ends.

PostgreSQL: a database of its own, ``keyturn_bench_<random>``, created from the admin URL and dropped at the
end (with ``FORCE``); each Keyturn group gets a schema in it (``search_path`` in the store URL, as the
contract tests do). Redis: a dedicated database number (15 unless told otherwise) and a random key prefix
per group; at the end the keys under the run's prefix are deleted, nothing else (no ``FLUSHDB``).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit


def _with_query(url: str, name: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{name}={quote(value)}"


def _with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def postgres_reachable(admin_url: str) -> str | None:
    """``None`` when PostgreSQL answers at ``admin_url``, else why not."""
    import psycopg

    try:
        with psycopg.connect(admin_url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).splitlines()[0]
    return None


def redis_reachable(url: str) -> str | None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        return str(exc)
    finally:
        client.close()
    return None


class PostgresPlace:
    """One database for this run; :meth:`schema` hands out a store URL per Keyturn group."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.dbname = f"keyturn_bench_{secrets.token_hex(4)}"
        self.url = _with_database(admin_url, self.dbname)

    def schema(self, name: str) -> str:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        return _with_query(self.url, "options", f"-csearch_path={name}")

    def version(self) -> str:
        import psycopg

        with psycopg.connect(self.admin_url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"


@contextlib.contextmanager
def postgres_place(admin_url: str) -> Iterator[PostgresPlace]:
    import psycopg
    from psycopg import sql

    place = PostgresPlace(admin_url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(place.dbname)))
    try:
        yield place
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(place.dbname))
            )


class RedisPlace:
    """One key prefix for this run; :meth:`group` hands out a store URL per Keyturn group."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"keyturn-bench:{secrets.token_hex(4)}:"

    def group(self, name: str) -> str:
        return _with_query(self.url, "prefix", f"{self.prefix}{name}:")

    def version(self) -> str:
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            return str(client.info("server").get("redis_version", "?"))
        finally:
            client.close()


@contextlib.contextmanager
def redis_place(url: str) -> Iterator[RedisPlace]:
    import redis

    place = RedisPlace(url)
    try:
        yield place
    finally:
        client = redis.Redis.from_url(url)
        try:
            batch = list(client.scan_iter(match=f"{place.prefix}*", count=1000))
            while batch:
                client.delete(*batch[:1000])
                batch = batch[1000:]
        finally:
            client.close()
