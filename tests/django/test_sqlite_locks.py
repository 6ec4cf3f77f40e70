"""Regression: opening a SQLite store must not drop the locks another connection of the process holds.

POSIX advisory locks belong to a process and an inode: closing *any* descriptor of the file releases every
lock the process holds on it (SQLite's "How To Corrupt" 2.2). The SQLite store used to open and close the
database file itself before connecting, to set its mode; in a Django process, whose own connection to the
same file was open, that dropped Django's locks, and another process then deleted the WAL index under it
(``disk I/O error``). A store opening now leaves an existing file's descriptors alone.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

from keyturn.store import open_store

WRITER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("CREATE TABLE IF NOT EXISTS scratch (n INTEGER)")
conn.execute("INSERT INTO scratch VALUES (1)")
conn.close()  # the last connection to close checkpoints and deletes the WAL index
"""


def another_process_writes_and_closes(path: Path) -> None:
    subprocess.run([sys.executable, "-c", WRITER, str(path)], capture_output=True, timeout=60, check=True)


async def open_and_close(path: Path) -> None:
    store = open_store(f"sqlite:///{path}")
    await store.open()
    await store.close()


def test_opening_a_store_keeps_the_locks_of_the_processs_other_connections(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    index = tmp_path / "shared.db-shm"
    asyncio.run(open_and_close(path))  # the tables exist, in WAL mode, as after ``migrate``
    holder = sqlite3.connect(path, isolation_level=None)  # Django's connection, say
    try:
        holder.execute("SELECT count(*) FROM sessions").fetchone()
        another_process_writes_and_closes(path)
        assert index.exists()  # our connection is open: the other one was not the last

        asyncio.run(open_and_close(path))  # another store in this process opens the same file
        another_process_writes_and_closes(path)

        assert index.exists()
        assert holder.execute("SELECT count(*) FROM scratch").fetchone() == (2,)
    finally:
        holder.close()
