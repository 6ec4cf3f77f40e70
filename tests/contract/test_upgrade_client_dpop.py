"""A store whose clients predate their DPoP policy (``oauth_clients.dpop``, issue 17) upgrades in place:
opening it adds the column, every client already registered reads back ``optional``, and a new client
can be registered ``required``. (Redis keeps clients as hashes: a hash without ``dpop`` is optional.)"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import psycopg
import pytest

from keyturn.store import open_store, postgres, sqlite
from keyturn.typing import ClientRecord

from .backends import isolated, raw_redis

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
OLD_CLIENT = (
    "INSERT INTO oauth_clients (client_id, secret_hash, created_at) VALUES ('spa', NULL, 1800000000.0)"
)


def write_before_the_policy(name: str, url: str) -> None:
    """The schema one version before the column, as the previous Keyturn left it, with one client."""
    if name == "sqlite":
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            for script in sqlite.MIGRATIONS[:-1]:
                conn.executescript(script)
            conn.execute(f"PRAGMA user_version = {len(sqlite.MIGRATIONS) - 1}")
            conn.execute(OLD_CLIENT)
            conn.commit()
    elif name == "postgresql":
        with psycopg.connect(postgres.conninfo_from_url(url)) as conn:
            conn.execute("CREATE TABLE keyturn_schema_version (version INTEGER NOT NULL)")
            before = next(i for i, script in enumerate(postgres.MIGRATIONS) if "ADD COLUMN dpop" in script)
            conn.execute("INSERT INTO keyturn_schema_version (version) VALUES (%s)", (before,))
            for script in postgres.MIGRATIONS[:before]:
                conn.execute(script)  # type: ignore[arg-type]
            conn.execute(OLD_CLIENT)  # type: ignore[arg-type]
    else:
        with raw_redis(url) as (client, p):
            client.hset(f"{p}c:spa", mapping={"client_id": "spa", "created_at": repr(NOW)})
            client.sadd(f"{p}clients", "spa")


@pytest.mark.parametrize("name", ["sqlite", "postgresql", "redis"])
async def test_clients_registered_before_the_dpop_policy_read_back_optional(
    name: str, tmp_path: Path, anyio_backend: str
) -> None:
    with isolated(name, tmp_path) as place:
        write_before_the_policy(name, place.url)
        store = open_store(place.url)
        await store.open()  # migrates
        try:
            assert await store.get_client("spa") == ClientRecord("spa", NOW)
            assert await store.add_client(ClientRecord("strict", NOW, dpop="required"))
            assert [c.dpop for c in await store.list_clients()] == ["optional", "required"]
        finally:
            await store.close()
