"""The SQL stores share one schema shape (keyturn.store._sql), which each dialect's DDL must create."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import psycopg
import pytest

from keyturn.store import _sql, open_store
from keyturn.store.postgres import conninfo_from_url

from .backends import isolated

SHAPE = {
    "sessions": _sql.STATE_COLUMNS,  # the session's own columns, then its refresh chain's
    "revocations": _sql.REVOCATION_COLUMNS,
    "signing_keys": _sql.KEY_COLUMNS,
    "users": _sql.USER_COLUMNS,
}
# Columns a dialect keeps after the shared ones, for its own use.
OWN = {"postgresql": {"signing_keys": ["added"]}}  # insertion order (SQLite has its rowid)


def columns(name: str, url: str, table: str) -> list[str]:
    if name == "sqlite":
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    with psycopg.connect(conninfo_from_url(url)) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
            (table,),
        ).fetchall()
        return [row[0] for row in rows]


@pytest.mark.parametrize("name", ["sqlite", "postgresql"])
async def test_each_sql_dialect_creates_the_shared_columns_in_order(
    name: str, tmp_path: Path, anyio_backend: str
) -> None:
    """The shared statements and row readers assume the shared column order on every SQL backend."""
    with isolated(name, tmp_path) as place:
        store = open_store(place.url)
        await store.open()
        await store.close()

        for table, shared in SHAPE.items():
            expected = [c.strip() for c in shared.split(",")] + OWN.get(name, {}).get(table, [])

            assert columns(name, place.url, table) == expected, table
        # State per session (issue 21): no table of refresh tokens.
        assert columns(name, place.url, "refresh_tokens") == []
