"""SQLiteStore's file: owner-only permissions, and failures that surface as clear errors."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from keyturn.errors import StoreUnavailable
from keyturn.store import open_store
from keyturn.store.sqlite import MIGRATIONS, SQLiteStore
from keyturn.typing import UserRecord

pytestmark = pytest.mark.anyio


async def test_database_file_and_its_journal_are_owner_only(tmp_path: Path) -> None:
    """The file holds password hashes and encrypted keys: nobody but its owner may read it."""
    path = tmp_path / "data" / "k.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.add_user(UserRecord("alice", "hash", 0.0))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        for sidecar in (path.with_name("k.db-wal"), path.with_name("k.db-shm")):
            assert sidecar.exists(), sidecar.name  # WAL mode is on
            assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600, sidecar.name
    finally:
        await store.close()


async def test_open_store_chooses_sqlite_by_url(tmp_path: Path) -> None:
    """``sqlite:///path`` is the embedded default and must land at that path."""
    store = open_store(f"sqlite:///{tmp_path / 'by-url.db'}")
    assert isinstance(store, SQLiteStore)
    await store.open()
    await store.close()

    assert (tmp_path / "by-url.db").exists()


async def test_open_and_close_are_idempotent(tmp_path: Path) -> None:
    """Start-up and shutdown hooks may run twice; neither may fail or leak a thread."""
    store = SQLiteStore(tmp_path / "k.db")
    await store.open()
    await store.open()
    await store.ping()
    await store.close()
    await store.close()


async def test_path_under_a_regular_file_fails_with_a_clear_error(tmp_path: Path) -> None:
    """A wrong data directory must fail at start-up with an error naming the problem, not hang or crash."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = SQLiteStore(blocker / "k.db")

    with pytest.raises((StoreUnavailable, OSError), match="not-a-dir"):
        await store.open()

    await store.close()  # nothing left half open


async def test_file_that_is_not_a_database_is_store_unavailable(tmp_path: Path) -> None:
    """Driver errors are wrapped as StoreUnavailable (server_error), with the cause kept for the log."""
    path = tmp_path / "k.db"
    path.write_bytes(b"this is not a database file, not even close." * 100)
    path.chmod(0o600)
    store = SQLiteStore(path)

    with pytest.raises(StoreUnavailable) as raised:
        await store.open()

    assert isinstance(raised.value.__cause__, sqlite3.DatabaseError)
    await store.close()


async def test_schema_newer_than_this_version_is_store_unavailable(tmp_path: Path) -> None:
    """An old binary must not write into a database a newer Keyturn has migrated."""
    path = tmp_path / "k.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    store = SQLiteStore(path)

    with pytest.raises(StoreUnavailable, match="newer"):
        await store.open()

    await store.close()


async def test_migrations_leave_the_schema_at_the_latest_version(tmp_path: Path) -> None:
    """Re-opening an up-to-date file must not re-run migrations (which would fail on existing tables)."""
    path = tmp_path / "k.db"
    for _ in range(2):
        store = SQLiteStore(path)
        await store.open()
        await store.close()

    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        conn.close()


async def test_a_closed_store_refuses_calls_with_a_clear_error(tmp_path: Path) -> None:
    """Using a store after shutdown is a programming error; it must say so rather than hang."""
    store = SQLiteStore(tmp_path / "k.db")
    await store.open()
    await store.close()

    with pytest.raises(RuntimeError, match="not open"):
        await store.get_session("s1")
