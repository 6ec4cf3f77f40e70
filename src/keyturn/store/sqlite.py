"""``sqlite:///path``: the embedded default.

WAL mode, ``synchronous=NORMAL`` (a commit survives a crash of the process; an operating-system crash
or power cut may lose the last few), and every write one short ``BEGIN IMMEDIATE`` transaction, so several
processes can share one file. A call runs at once on the event loop when the lock is free (the common case,
and the fastest), and on the store's own thread, which waits for the lock, when another process holds it:
the event loop never waits on another process.

The calls themselves are the flows both SQL stores share (``_sql_store``); this module keeps what is
SQLite's own: its dialect (placeholders, the rate-limit statement), its DDL, and the connections that
drive the flows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, TypeVar

from ..errors import ConfigError, StoreUnavailable
from ..ratelimit import RateLimit, micros
from ..typing import RateLimitResult
from ._sql import Dialect, Flow, Query
from ._sql_store import SQLStore

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000

# Each entry moves the schema one version up; the index + 1 is the version it leaves behind.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sessions (
        sid TEXT PRIMARY KEY,
        sub TEXT NOT NULL,
        created_at REAL NOT NULL,
        absolute_expires_at REAL NOT NULL,
        head_jti TEXT NOT NULL,
        gen INTEGER NOT NULL,
        last_seen_at REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'active',
        revoked_reason TEXT,
        revoked_at REAL,
        user_agent TEXT,
        ip TEXT,
        client_id TEXT,
        claims TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX sessions_by_sub ON sessions (sub);
    CREATE INDEX sessions_by_end ON sessions (absolute_expires_at);
    CREATE TABLE refresh_tokens (
        jti TEXT PRIMARY KEY,
        sid TEXT NOT NULL,
        gen INTEGER NOT NULL,
        kid TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        rotated_at REAL
    ) WITHOUT ROWID;
    CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
    CREATE TABLE revocations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('sid', 'jti')),
        value TEXT NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX revocations_by_value ON revocations (value);
    CREATE INDEX revocations_by_expiry ON revocations (expires_at);
    CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        use TEXT NOT NULL CHECK (use IN ('access', 'refresh')),
        alg TEXT NOT NULL,
        material BLOB NOT NULL,
        public_jwk TEXT,
        created_at REAL NOT NULL,
        active INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE users (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created_at REAL NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0
    );
    """,
    # Rate-limit buckets: a key and its GCRA theoretical arrival time, in microseconds (see RateLimit).
    """
    CREATE TABLE rate_limits (
        key TEXT PRIMARY KEY,
        tat INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # State per session, not per refresh token (issue 21): the session keeps its head's signing fields
    # and its recently rotated generations (see keyturn.store._chain), taken from refresh_tokens, which
    # goes. Live sessions keep refreshing; a token rotated just before keeps its grace replay.
    """
    ALTER TABLE sessions ADD COLUMN head_kid TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN head_issued_at INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN head_expires_at INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN rotated TEXT NOT NULL DEFAULT '';
    UPDATE sessions SET
        head_kid = COALESCE((SELECT kid FROM refresh_tokens WHERE jti = sessions.head_jti), ''),
        head_issued_at = COALESCE((SELECT issued_at FROM refresh_tokens WHERE jti = sessions.head_jti), 0),
        head_expires_at = COALESCE((SELECT expires_at FROM refresh_tokens WHERE jti = sessions.head_jti), 0),
        rotated = COALESCE((
            SELECT group_concat(r.gen || ' ' || r.jti || ' ' || printf('%.6f', r.rotated_at), ',')
            FROM refresh_tokens AS r
            WHERE r.sid = sessions.sid AND r.rotated_at IS NOT NULL AND r.gen >= sessions.gen - 16
        ), '');
    DROP TABLE refresh_tokens;
    """,
    # Registered OAuth 2.0 clients (issue 17): a confidential client's keyed secret hash, NULL for public.
    """
    CREATE TABLE oauth_clients (
        client_id TEXT PRIMARY KEY,
        secret_hash TEXT,
        created_at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # DPoP (issue 17): the key a session is bound to, and the proofs' jti seen lately (RFC 9449).
    """
    ALTER TABLE sessions ADD COLUMN jkt TEXT;
    CREATE TABLE dpop_proofs (
        key TEXT PRIMARY KEY,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX dpop_proofs_by_expiry ON dpop_proofs (expires_at);
    """,
    # A registered client's own DPoP policy (issue 17): 'required' makes its sessions start with a proof.
    """
    ALTER TABLE oauth_clients ADD COLUMN dpop TEXT NOT NULL DEFAULT 'optional';
    """,
)


def path_from_url(url: str) -> Path:
    """``sqlite:///rel/path`` or ``sqlite:////abs/path`` to a path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(f"not a sqlite:///path URL: {url!r}")
    return Path(url[len(prefix) :])


class SQLiteDialect(Dialect):
    """SQLite's statements: ``?`` placeholders; ``BEGIN IMMEDIATE`` already serialises every writer."""

    placeholder = "?"
    key_order = "ORDER BY created_at, rowid"
    # AUTOINCREMENT keeps the largest number ever given in sqlite_sequence, whatever was deleted since.
    revocation_head = "SELECT seq FROM sqlite_sequence WHERE name = 'revocations'"

    def take(self, key: str, limit: RateLimit, now: float) -> Flow[RateLimitResult]:
        """One call from the bucket ``key``, inside the caller's ``BEGIN IMMEDIATE`` transaction.

        One statement: a new bucket, or the old one moved on if that is allowed (GCRA, as ``RateLimit.take``);
        it changes one row when the call is allowed and none when it is not. (Not ``RETURNING``: SQLite
        gathers its rows in a temporary table, which costs more than the rest of the take.)
        """
        now_us = micros(now)
        params = {"key": key, "now": now_us, "t": limit.interval_us, "tau": limit.tolerance_us}
        if (yield Query(_TAKE, params, "count")) == 1:
            return RateLimitResult(True)
        row = yield Query("SELECT tat FROM rate_limits WHERE key = ?", (key,), "one")
        return RateLimitResult.refused(limit.wait_us(row[0] if row else None, now_us))

    def add_revocation(self, kind: Literal["sid", "jti"], value: str, expires_at: float) -> Flow[None]:
        if kind == "jti":
            seen = yield Query("SELECT 1 FROM revocations WHERE value = ? AND kind = 'jti'", (value,), "one")
            if seen is not None:
                return
        yield Query(self.insert_revocation, (kind, value, expires_at))


_SQLITE = SQLiteDialect()


class SQLiteStore(SQLStore):
    """A store in one SQLite file, shared safely by several processes."""

    dialect = _SQLITE

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._executor: ThreadPoolExecutor | None = None
        # Used on the event loop; never waits for a lock (busy_timeout 0).
        self._fast: sqlite3.Connection | None = None
        # Used on the store's own thread, for calls the fast connection found locked; waits for the lock.
        self._waiting: sqlite3.Connection | None = None

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        """The store at ``url``'s path. ``sqlite:///data/k.db`` is relative to the working directory, and
        there a missing directory is far more often a mistyped absolute path (``sqlite:////data/k.db``, four
        slashes) than a wish for a new tree under the working directory: it is refused, naming both. An
        absolute path gets its directory made, as the data directory does."""
        path = path_from_url(url)
        if not path.is_absolute() and not path.parent.is_dir():
            raise ConfigError(
                f"no directory {Path.cwd() / path.parent} for the SQLite store of {url}; "
                f"for the absolute path /{path} write sqlite:////{path}"
            )
        return cls(path)

    # -- plumbing --------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keyturn-sqlite")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(executor, _guard, self._prepare_file)
            self._waiting = await loop.run_in_executor(executor, _guard, self._migrated_connection)
            self._fast = _guard(lambda: _connect(self.path, busy_timeout_ms=0))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        fast, self._fast = self._fast, None
        waiting, self._waiting = self._waiting, None
        if fast is not None:
            fast.close()
        if waiting is not None:
            await asyncio.get_running_loop().run_in_executor(executor, waiting.close)
        executor.shutdown(wait=True)

    def _prepare_file(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # The file holds password hashes and (encrypted) keys: its owner alone may read it. An existing
            # file is never opened here: closing any descriptor of it would drop every POSIX lock this
            # process holds on it (another connection's, a Django project's own), and corrupt the WAL.
            if not self.path.exists():
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
            if self.path.stat().st_mode & 0o077:
                self.path.chmod(0o600)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open the store at {self.path}: {exc.strerror}") from exc

    def _migrated_connection(self) -> sqlite3.Connection:
        conn = _connect(self.path, busy_timeout_ms=BUSY_TIMEOUT_MS)
        try:
            _in_transaction(conn, lambda: _migrate(conn))
        except BaseException:
            conn.close()
            raise
        return conn

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with a connection; driver errors become ``StoreUnavailable``.

        ``fn`` first runs at once on the event loop with the fast connection: a store call takes tens of
        microseconds, less than handing it to a thread. Only if another connection (another process, or
        this store's thread) holds the lock does it run again, from the start, on the store's thread,
        which waits for the lock without stalling the loop. A write that found the lock taken has rolled
        back and changed nothing, so running it again is safe.
        """
        fast, executor = self._fast, self._executor
        if fast is None or executor is None:
            raise RuntimeError("the store is not open")
        try:
            return fn(fast)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise StoreUnavailable() from exc
        except sqlite3.IntegrityError as exc:
            raise _conflict(exc) from exc
        except sqlite3.Error as exc:
            raise StoreUnavailable() from exc
        return await asyncio.get_running_loop().run_in_executor(executor, _guard, self._on_waiting(fn))

    def _on_waiting(self, fn: Callable[[sqlite3.Connection], T]) -> Callable[[], T]:
        def run() -> T:
            assert self._waiting is not None
            return fn(self._waiting)

        return run

    async def _write(self, flow: Callable[[], Flow[T]]) -> T:
        return await self._call(lambda conn: _in_transaction(conn, lambda: _drive(conn, flow())))

    async def _read(self, flow: Callable[[], Flow[T]]) -> T:
        return await self._call(lambda conn: _drive(conn, flow()))

    async def rate_limit_take(self, key: str, limit: RateLimit, now: float) -> RateLimitResult:
        return await self._write(lambda: self.dialect.take(key, limit, now))


def _connect(path: Path, *, busy_timeout_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        if busy_timeout_ms:
            _use_wal(conn, busy_timeout_ms)
        conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def _use_wal(conn: sqlite3.Connection, timeout_ms: int) -> None:
    """Put the file in WAL mode (a property of the file, kept once set).

    Switching needs a lock the busy handler does not wait for, so processes opening a new file at the same
    moment can be told "database is locked": they try again until the timeout.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _in_transaction(conn: sqlite3.Connection, fn: Callable[[], T]) -> T:
    """Run ``fn`` in one ``BEGIN IMMEDIATE`` transaction on ``conn``: all of it or nothing."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn()
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def _migrate(conn: sqlite3.Connection) -> None:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise StoreUnavailable(f"the database schema (version {version}) is newer than this Keyturn knows")
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")


def _guard(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except sqlite3.IntegrityError as exc:
        raise _conflict(exc) from exc
    except sqlite3.Error as exc:
        raise StoreUnavailable() from exc


def _conflict(exc: sqlite3.IntegrityError) -> ValueError:
    """A unique id used twice: a caller's bug (ids are random), not an outage to retry."""
    return ValueError(f"a record with this id already exists ({exc})")


_TAKE = """
INSERT INTO rate_limits (key, tat) VALUES (:key, :now + :t)
ON CONFLICT (key) DO UPDATE SET tat = max(tat, :now) + :t
WHERE max(tat, :now) + :t - :tau <= :now
"""


def _drive(conn: sqlite3.Connection, flow: Flow[T]) -> T:
    """Run ``flow`` on ``conn``: each statement it yields, and its answer sent back."""
    try:
        query = next(flow)
        while True:
            sql, params, fetch = query
            cursor = conn.execute(sql, params)
            answer: object
            if fetch == "one":
                answer = cursor.fetchone()
            elif fetch == "count":
                answer = cursor.rowcount
            elif fetch == "all":
                answer = cursor.fetchall()
            else:
                answer = None
            query = flow.send(answer)
    except StopIteration as done:
        result: T = done.value
        return result


__all__ = ["SQLiteDialect", "SQLiteStore", "path_from_url"]
