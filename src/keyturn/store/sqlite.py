"""``sqlite:///path``: the embedded default.

WAL mode, ``synchronous=NORMAL`` (a commit survives a crash of the process; an operating-system crash
or power cut may lose the last few), and every write one short ``BEGIN IMMEDIATE`` transaction, so several
processes can share one file. A call runs at once on the event loop when the lock is free (the common case,
and the fastest), and on the store's own thread, which waits for the lock, when another process holds it:
the event loop never waits on another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ..errors import StoreUnavailable
from ..typing import (
    Decide,
    Limited,
    RateLimit,
    RateLimitResult,
    RateLimitTake,
    RefreshOutcome,
    RefreshRecord,
    Replay,
    Reuse,
    Revocation,
    RevokedReason,
    Rotate,
    SessionRecord,
    StoredKey,
    UserRecord,
    micros,
)
from ._sql import KEY_COLUMNS, REFRESH_COLUMNS, SESSION_COLUMNS, USER_COLUMNS

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
)


def path_from_url(url: str) -> Path:
    """``sqlite:///rel/path`` or ``sqlite:////abs/path`` to a path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(f"not a sqlite:///path URL: {url!r}")
    return Path(url[len(prefix) :])


def _session(row: sqlite3.Row) -> SessionRecord:
    return SessionRecord(
        sid=row["sid"],
        sub=row["sub"],
        created_at=row["created_at"],
        absolute_expires_at=row["absolute_expires_at"],
        head_jti=row["head_jti"],
        gen=row["gen"],
        last_seen_at=row["last_seen_at"],
        state=row["state"],
        revoked_reason=row["revoked_reason"],
        revoked_at=row["revoked_at"],
        user_agent=row["user_agent"],
        ip=row["ip"],
        client_id=row["client_id"],
        claims=json.loads(row["claims"]),
    )


def _refresh(row: sqlite3.Row) -> RefreshRecord:
    return RefreshRecord(
        jti=row["jti"],
        sid=row["sid"],
        gen=row["gen"],
        kid=row["kid"],
        issued_at=row["issued_at"],
        expires_at=row["expires_at"],
        rotated_at=row["rotated_at"],
    )


def _key(row: sqlite3.Row) -> StoredKey:
    return StoredKey(
        kid=row["kid"],
        use=row["use"],
        alg=row["alg"],
        material=bytes(row["material"]),
        public_jwk=row["public_jwk"],
        created_at=row["created_at"],
        active=bool(row["active"]),
    )


def _user(row: sqlite3.Row) -> UserRecord:
    return UserRecord(
        username=row["username"],
        password_hash=row["password_hash"],
        created_at=row["created_at"],
        disabled=bool(row["disabled"]),
    )


class SQLiteStore:
    """A store in one SQLite file, shared safely by several processes."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._executor: ThreadPoolExecutor | None = None
        # Used on the event loop; never waits for a lock (busy_timeout 0).
        self._fast: sqlite3.Connection | None = None
        # Used on the store's own thread, for calls the fast connection found locked; waits for the lock.
        self._waiting: sqlite3.Connection | None = None

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        return cls(path_from_url(url))

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
            _write(conn, _migrate)
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

    async def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(lambda conn: _write(conn, fn))

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(fn)

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    # -- sessions ------------------------------------------------------------------------------

    async def create_session(self, session: SessionRecord, head: RefreshRecord) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session.sid,
                    session.sub,
                    session.created_at,
                    session.absolute_expires_at,
                    session.head_jti,
                    session.gen,
                    session.last_seen_at,
                    session.state,
                    session.revoked_reason,
                    session.revoked_at,
                    session.user_agent,
                    session.ip,
                    session.client_id,
                    json.dumps(session.claims),
                ),
            )
            _insert_refresh(conn, head)

        await self._transaction(run)

    async def refresh(
        self, sid: str, jti: str, decide: Decide, takes: Sequence[RateLimitTake] = ()
    ) -> RefreshOutcome:
        def run(conn: sqlite3.Connection) -> RefreshOutcome:
            for take in takes:
                taken = _take(conn, take.key, take.limit, take.now)
                if not taken.allowed:
                    return RefreshOutcome(Limited(take, taken.retry_after), None, None)
            row = conn.execute(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE sid = ?", (sid,)).fetchone()
            session = _session(row) if row else None
            presented = _get_refresh(conn, jti)
            decision = decide(session, presented)
            if session is None:
                return RefreshOutcome(decision, None, None)
            if isinstance(decision, Rotate):
                head = decision.new_head
                conn.execute(
                    "UPDATE refresh_tokens SET rotated_at = ? WHERE jti = ?",
                    (decision.now, session.head_jti),
                )
                _insert_refresh(conn, head)
                conn.execute(
                    "UPDATE sessions SET head_jti = ?, gen = ?, last_seen_at = ? WHERE sid = ?",
                    (head.jti, head.gen, decision.now, sid),
                )
                session = dataclasses.replace(
                    session, head_jti=head.jti, gen=head.gen, last_seen_at=decision.now
                )
                return RefreshOutcome(decision, session, head)
            if isinstance(decision, Replay):
                return RefreshOutcome(decision, session, _get_refresh(conn, session.head_jti))
            if isinstance(decision, Reuse):
                _revoke(conn, sid, "reuse", decision.now, decision.revocation_expires_at)
                session = dataclasses.replace(
                    session, state="revoked", revoked_reason="reuse", revoked_at=decision.now
                )
            return RefreshOutcome(decision, session, None)

        return await self._transaction(run)

    async def get_session(self, sid: str) -> SessionRecord | None:
        def run(conn: sqlite3.Connection) -> SessionRecord | None:
            row = conn.execute(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE sid = ?", (sid,)).fetchone()
            return _session(row) if row else None

        return await self._read(run)

    async def list_sessions(self, sub: str, *, include_revoked: bool = False) -> list[SessionRecord]:
        query = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE sub = ?"
        if not include_revoked:
            query += " AND state = 'active'"
        query += " ORDER BY created_at"
        return await self._read(lambda c: [_session(r) for r in c.execute(query, (sub,))])

    async def list_all_sessions(self, *, include_revoked: bool = False) -> list[SessionRecord]:
        query = f"SELECT {SESSION_COLUMNS} FROM sessions"
        if not include_revoked:
            query += " WHERE state = 'active'"
        query += " ORDER BY created_at"
        return await self._read(lambda c: [_session(r) for r in c.execute(query)])

    async def revoke_session(
        self, sid: str, reason: RevokedReason, now: float, revocation_expires_at: float
    ) -> bool:
        return await self._transaction(lambda c: _revoke(c, sid, reason, now, revocation_expires_at))

    async def revoke_subject(
        self, sub: str, reason: RevokedReason, now: float, revocation_expires_at: float
    ) -> list[str]:
        def run(conn: sqlite3.Connection) -> list[str]:
            sids = [
                r[0]
                for r in conn.execute(
                    "SELECT sid FROM sessions WHERE sub = ? AND state = 'active' ORDER BY created_at", (sub,)
                )
            ]
            for sid in sids:
                _revoke(conn, sid, reason, now, revocation_expires_at)
            return sids

        return await self._transaction(run)

    # -- revocations -----------------------------------------------------------------------------

    async def revoke_access_token(self, jti: str, expires_at: float) -> None:
        def run(conn: sqlite3.Connection) -> None:
            seen = conn.execute(
                "SELECT 1 FROM revocations WHERE value = ? AND kind = 'jti'", (jti,)
            ).fetchone()
            if seen is None:
                conn.execute(
                    "INSERT INTO revocations (kind, value, expires_at) VALUES ('jti', ?, ?)",
                    (jti, expires_at),
                )

        await self._transaction(run)

    async def is_access_token_revoked(self, jti: str, now: float) -> bool:
        row = await self._read(
            lambda c: c.execute(
                "SELECT 1 FROM revocations WHERE value = ? AND kind = 'jti' AND expires_at > ?",
                (jti, now),
            ).fetchone()
        )
        return row is not None

    async def revocations_since(self, seq: int, now: float, limit: int = 1000) -> list[Revocation]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT seq, kind, value, expires_at FROM revocations "
                "WHERE seq > ? AND expires_at > ? ORDER BY seq LIMIT ?",
                (seq, now, limit),
            ).fetchall()
        )
        return [Revocation(r["seq"], r["kind"], r["value"], r["expires_at"]) for r in rows]

    async def revocation_head(self) -> int:
        # AUTOINCREMENT keeps the largest number ever given in sqlite_sequence, whatever was deleted since.
        row = await self._read(
            lambda c: c.execute("SELECT seq FROM sqlite_sequence WHERE name = 'revocations'").fetchone()
        )
        return int(row[0]) if row else 0

    # -- rate limits -----------------------------------------------------------------------------

    async def rate_limit_take(self, key: str, limit: RateLimit, now: float) -> RateLimitResult:
        return await self._transaction(lambda conn: _take(conn, key, limit, now))

    async def prune(self, now: float) -> int:
        def run(conn: sqlite3.Connection) -> int:
            count = 0
            count += conn.execute("DELETE FROM rate_limits WHERE tat <= ?", (micros(now),)).rowcount
            count += conn.execute("DELETE FROM sessions WHERE absolute_expires_at <= ?", (now,)).rowcount
            count += conn.execute(
                "DELETE FROM refresh_tokens WHERE expires_at <= ? OR sid NOT IN (SELECT sid FROM sessions)",
                (now,),
            ).rowcount
            count += conn.execute("DELETE FROM revocations WHERE expires_at <= ?", (now,)).rowcount
            return count

        return await self._transaction(run)

    # -- keys ------------------------------------------------------------------------------------

    async def list_keys(self) -> list[StoredKey]:
        return await self._read(
            lambda c: [
                _key(r)
                for r in c.execute(f"SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at, rowid")
            ]
        )

    async def add_keys(self, keys: Sequence[StoredKey]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            for key in keys:
                _insert_key(conn, key)

        await self._transaction(run)

    async def delete_keys(self, kids: Sequence[str]) -> int:
        def run(conn: sqlite3.Connection) -> int:
            return sum(
                conn.execute("DELETE FROM signing_keys WHERE kid = ?", (kid,)).rowcount for kid in set(kids)
            )

        return await self._transaction(run)

    async def ensure_keys(self, candidates: Sequence[StoredKey]) -> list[StoredKey]:
        def run(conn: sqlite3.Connection) -> list[StoredKey]:
            for key in candidates:
                has = conn.execute(
                    "SELECT 1 FROM signing_keys WHERE use = ? AND alg = ? AND active = 1",
                    (key.use, key.alg),
                ).fetchone()
                if has is None:
                    _insert_key(conn, key)
            return [
                _key(r)
                for r in conn.execute(f"SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at, rowid")
            ]

        return await self._transaction(run)

    # -- users -----------------------------------------------------------------------------------

    async def get_user(self, username: str) -> UserRecord | None:
        row = await self._read(
            lambda c: c.execute(
                f"SELECT {USER_COLUMNS} FROM users WHERE username = ?", (username,)
            ).fetchone()
        )
        return _user(row) if row else None

    async def add_user(self, user: UserRecord) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT OR IGNORE INTO users (username, password_hash, created_at, disabled) "
                "VALUES (?, ?, ?, ?)",
                (user.username, user.password_hash, user.created_at, int(user.disabled)),
            )
            return cur.rowcount == 1

        return await self._transaction(run)

    async def update_user(
        self, username: str, *, password_hash: str | None = None, disabled: bool | None = None
    ) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE users SET password_hash = COALESCE(?, password_hash), "
                "disabled = COALESCE(?, disabled) WHERE username = ?",
                (password_hash, None if disabled is None else int(disabled), username),
            )
            return cur.rowcount == 1

        return await self._transaction(run)

    async def list_users(self) -> list[UserRecord]:
        return await self._read(
            lambda c: [_user(r) for r in c.execute(f"SELECT {USER_COLUMNS} FROM users ORDER BY username")]
        )


def _connect(path: Path, *, busy_timeout_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
    )
    try:
        conn.row_factory = sqlite3.Row
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


def _write(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` in one ``BEGIN IMMEDIATE`` transaction: all of it or nothing."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
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


def _take(conn: sqlite3.Connection, key: str, limit: RateLimit, now: float) -> RateLimitResult:
    """One call from the bucket ``key``, inside the caller's ``BEGIN IMMEDIATE`` transaction.

    One statement: a new bucket, or the old one moved on if that is allowed (GCRA, as ``RateLimit.take``);
    it changes one row when the call is allowed and none when it is not. (Not ``RETURNING``: SQLite
    gathers its rows in a temporary table, which costs more than the rest of the take.)
    """
    now_us = micros(now)
    params = {"key": key, "now": now_us, "t": limit.interval_us, "tau": limit.tolerance_us}
    if conn.execute(_TAKE, params).rowcount == 1:
        return RateLimitResult(True)
    row = conn.execute("SELECT tat FROM rate_limits WHERE key = ?", (key,)).fetchone()
    return RateLimitResult.refused(limit.wait_us(row[0] if row else None, now_us))


def _get_refresh(conn: sqlite3.Connection, jti: str) -> RefreshRecord | None:
    row = conn.execute(f"SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE jti = ?", (jti,)).fetchone()
    return _refresh(row) if row else None


def _insert_refresh(conn: sqlite3.Connection, record: RefreshRecord) -> None:
    conn.execute(
        f"INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            record.jti,
            record.sid,
            record.gen,
            record.kid,
            record.issued_at,
            record.expires_at,
            record.rotated_at,
        ),
    )


def _insert_key(conn: sqlite3.Connection, key: StoredKey) -> None:
    conn.execute(
        f"INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (key.kid, key.use, key.alg, key.material, key.public_jwk, key.created_at, int(key.active)),
    )


def _revoke(
    conn: sqlite3.Connection, sid: str, reason: str, now: float, revocation_expires_at: float
) -> bool:
    cur = conn.execute(
        "UPDATE sessions SET state = 'revoked', revoked_reason = ?, revoked_at = ? "
        "WHERE sid = ? AND state = 'active'",
        (reason, now, sid),
    )
    if cur.rowcount != 1:
        return False
    conn.execute(
        "INSERT INTO revocations (kind, value, expires_at) VALUES ('sid', ?, ?)",
        (sid, revocation_expires_at),
    )
    return True


__all__ = ["SQLiteStore", "path_from_url"]
