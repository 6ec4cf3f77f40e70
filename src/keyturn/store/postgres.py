"""``postgresql://…``: one database shared by every process of a service.

How each call stays atomic when many processes share the database:

- Every write is one transaction (``READ COMMITTED``), run on a connection from a small pool; a call that
  fails part-way rolls back whole.
- ``refresh`` locks the session's row (``SELECT … FOR UPDATE``) before it reads the presented refresh
  record, so concurrent refreshes of one session queue on that row and each one decides on what the
  previous one committed: one rotates, the rest replay. The decision itself is pure and applied in the
  same transaction. A deadlock or serialisation failure runs the whole transaction again (``decide`` too).
- Writers of the revocation feed and of the signing keys first take a transaction-scoped advisory lock
  named after their table (in this schema), so they go one at a time and readers never wait: two
  processes starting together add one key, not one each, and sequence numbers of the feed become visible
  in increasing order, so a validator that has read up to ``N`` never later finds a smaller number
  committed behind it. A writer takes that lock last, after any session row it locks, so it cannot
  deadlock with ``refresh``.
- Migrations run in ``open()``, in one transaction under a database-wide advisory lock: several processes
  starting at once migrate once.

Tables live in the connection's current schema (the first of ``search_path``), never a named one, so a URL
such as ``postgresql://host/db?options=-csearch_path%3Dkeyturn`` puts a service in a schema of its own.

Every call is bounded in time: connections time out after ``CONNECT_TIMEOUT_S``, waiting for a pooled one
after ``POOL_TIMEOUT_S``, statements after ``STATEMENT_TIMEOUT_MS`` (unless the URL sets its own), and the
whole call after ``CALL_TIMEOUT_S`` (to which psycopg may add up to 10 s trying to cancel the query of a
server that does not answer at all). Any driver error or timeout becomes ``StoreUnavailable``; the pool
checks a connection that has been idle for ``IDLE_CHECK_AFTER_S`` or more before lending it, replaces broken
ones and reconnects on demand, so the store recovers by itself when the server comes back.

Claims are kept as JSON text, exactly as the SQLite store keeps them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeAlias, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import BaseRowFactory, TupleRow, class_row, kwargs_row
from psycopg_pool import AsyncConnectionPool

from ..errors import ConfigError, StoreUnavailable
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
Conn: TypeAlias = AsyncConnection[TupleRow]

CONNECT_TIMEOUT_S = 3
POOL_TIMEOUT_S = 5.0
RECONNECT_TIMEOUT_S = 10.0  # the pool then stops retrying in the background and reconnects on demand
STATEMENT_TIMEOUT_MS = 5000
IDLE_CHECK_AFTER_S = 1.0  # a pooled connection idle this long is checked before it is lent again
CALL_TIMEOUT_S = 6.0  # a little over the statement timeout, so the server reports its own first
POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 10
ATTEMPTS = 3  # a transaction chosen as a deadlock victim is run again, up to this many times in all

# Advisory lock keys: one bigint for migrations (the tables may not exist yet), and a class for locks
# named after a table (the second key is the table's oid, so each schema has its own).
_MIGRATION_LOCK = int.from_bytes(b"keyturn", "big")
_TABLE_LOCK_CLASS = int.from_bytes(b"kt", "big")

# Each entry moves the schema one version up; the index + 1 is the version it leaves behind.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sessions (
        sid TEXT PRIMARY KEY,
        sub TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        absolute_expires_at DOUBLE PRECISION NOT NULL,
        head_jti TEXT NOT NULL,
        gen BIGINT NOT NULL,
        last_seen_at DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'revoked')),
        revoked_reason TEXT,
        revoked_at DOUBLE PRECISION,
        user_agent TEXT,
        ip TEXT,
        client_id TEXT,
        claims TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX sessions_by_sub ON sessions (sub, created_at);
    CREATE INDEX sessions_by_end ON sessions (absolute_expires_at);
    CREATE TABLE refresh_tokens (
        jti TEXT PRIMARY KEY,
        sid TEXT NOT NULL,
        gen BIGINT NOT NULL,
        kid TEXT NOT NULL,
        issued_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        rotated_at DOUBLE PRECISION
    );
    CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
    CREATE TABLE revocations (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('sid', 'jti')),
        value TEXT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL
    );
    CREATE UNIQUE INDEX revocations_jti_once ON revocations (value) WHERE kind = 'jti';
    CREATE INDEX revocations_by_expiry ON revocations (expires_at);
    CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        use TEXT NOT NULL CHECK (use IN ('access', 'refresh')),
        alg TEXT NOT NULL,
        material BYTEA NOT NULL,
        public_jwk TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        active BOOLEAN NOT NULL DEFAULT TRUE,
        added BIGINT GENERATED ALWAYS AS IDENTITY  -- insertion order, for keys created in the same instant
    );
    CREATE TABLE users (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        disabled BOOLEAN NOT NULL DEFAULT FALSE
    );
    """,
    # Rate-limit buckets: a key and its GCRA theoretical arrival time, in microseconds (see RateLimit).
    # Unlogged: no WAL for a write made on nearly every call; after a crash the table is empty, which
    # only gives every client a full bucket. The fill factor leaves room for HOT updates.
    """
    CREATE UNLOGGED TABLE rate_limits (
        key TEXT PRIMARY KEY,
        tat BIGINT NOT NULL
    ) WITH (fillfactor = 70);
    """,
)

_SESSION_ORDER = "ORDER BY created_at, sid"


def _session(*, claims: str, **columns: Any) -> SessionRecord:
    return SessionRecord(claims=json.loads(claims), **columns)


# Rows come back as records: column names are the records' field names.
_SESSION_ROW: BaseRowFactory[SessionRecord] = kwargs_row(_session)
_REFRESH_ROW = class_row(RefreshRecord)
_REVOCATION_ROW = class_row(Revocation)
_KEY_ROW = class_row(StoredKey)
_USER_ROW = class_row(UserRecord)


def conninfo_from_url(url: str) -> str:
    """``url`` as a libpq connection string, with Keyturn's time limits where the URL sets none."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"not a valid PostgreSQL URL: {_reason(exc)}") from exc
    limits: dict[str, str | int] = {}
    if "connect_timeout" not in params:
        limits["connect_timeout"] = CONNECT_TIMEOUT_S
    options = str(params.get("options") or "")
    if "statement_timeout" not in options:
        limits["options"] = f"{options} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip()
    return make_conninfo(url, **limits)


class PostgresStore:
    """A store in a PostgreSQL database, shared safely by several processes."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._returned_at: weakref.WeakKeyDictionary[Conn, float] = weakref.WeakKeyDictionary()

    @classmethod
    def from_url(cls, url: str) -> PostgresStore:
        return cls(conninfo_from_url(url))

    # -- plumbing --------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        # Migrate on a connection of its own first: a failure to connect then says why.
        try:
            async with asyncio.timeout(CALL_TIMEOUT_S):
                conn = await AsyncConnection.connect(self._conninfo, autocommit=True)
                async with conn, conn.transaction():
                    await _migrate(conn)
        except (psycopg.Error, TimeoutError) as exc:
            raise StoreUnavailable(f"cannot open the PostgreSQL store: {_reason(exc)}") from exc
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self._conninfo,
            min_size=POOL_MIN_SIZE,
            max_size=POOL_MAX_SIZE,
            kwargs={"autocommit": True},
            check=self._check_if_idle,
            timeout=POOL_TIMEOUT_S,
            reconnect_timeout=RECONNECT_TIMEOUT_S,
            name="keyturn",
            open=False,
        )
        try:
            await pool.open(wait=True, timeout=POOL_TIMEOUT_S)
        except psycopg.Error as exc:  # PoolTimeout
            await pool.close()
            raise StoreUnavailable(f"cannot open the PostgreSQL store: {_reason(exc)}") from exc
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def _check_if_idle(self, conn: Conn) -> None:
        """Before lending a connection, make sure it still works, if it has been idle a while.

        A connection returned moments ago is almost surely fine, and checking it would cost a round
        trip on every call; one idle for longer may have been cut by a server restart.
        """
        if time.monotonic() - self._returned_at.get(conn, float("-inf")) >= IDLE_CHECK_AFTER_S:
            await AsyncConnectionPool.check_connection(conn)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _call(self, fn: Callable[[Conn], Awaitable[T]], *, transaction: bool = True) -> T:
        """Run ``fn`` on a pooled connection, in one transaction unless told otherwise.

        Driver errors and timeouts become ``StoreUnavailable``; a duplicate id becomes ``ValueError``.
        """
        pool = self._pool
        if pool is None:
            raise RuntimeError("the store is not open")
        attempt = 1
        while True:
            try:
                async with asyncio.timeout(CALL_TIMEOUT_S), pool.connection() as conn:
                    try:
                        if not transaction:
                            return await fn(conn)
                        async with conn.transaction():
                            return await fn(conn)
                    finally:
                        self._returned_at[conn] = time.monotonic()
            except psycopg.errors.TransactionRollback as exc:  # a deadlock victim; nothing was applied
                if attempt >= ATTEMPTS:
                    raise StoreUnavailable() from exc
                attempt += 1
            except psycopg.errors.UniqueViolation as exc:
                # A unique id used twice: a caller's bug (ids are random), not an outage to retry.
                raise ValueError(
                    f"a record with this id already exists ({exc.diag.constraint_name})"
                ) from exc
            except (psycopg.Error, TimeoutError) as exc:  # psycopg_pool's errors are psycopg.Errors too
                raise StoreUnavailable() from exc

    async def _read(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        return await self._call(fn, transaction=False)

    async def ping(self) -> None:
        async def run(conn: Conn) -> None:
            await conn.execute("SELECT 1")

        await self._read(run)

    # -- sessions ------------------------------------------------------------------------------

    async def create_session(self, session: SessionRecord, head: RefreshRecord) -> None:
        async def run(conn: Conn) -> None:
            await conn.execute(
                f"INSERT INTO sessions ({SESSION_COLUMNS}) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
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
            await _insert_refresh(conn, head)

        await self._call(run)

    async def refresh(
        self, sid: str, jti: str, decide: Decide, takes: Sequence[RateLimitTake] = ()
    ) -> RefreshOutcome:
        if takes:
            # Each take is one statement of its own, before the refresh's transaction: inside it, the lock
            # on a busy bucket (one address's) would be held for the whole refresh and queue every other
            # refresh from that address behind it.
            async def take_all(conn: Conn) -> Limited | None:
                for take in takes:
                    taken = await _take(conn, take.key, take.limit, take.now)
                    if not taken.allowed:
                        return Limited(take, taken.retry_after)
                return None

            limited = await self._read(take_all)
            if limited is not None:
                return RefreshOutcome(limited, None, None)

        async def run(conn: Conn) -> RefreshOutcome:
            session = await _one(
                conn, _SESSION_ROW, f"SELECT {SESSION_COLUMNS} FROM sessions WHERE sid = %s FOR UPDATE", sid
            )
            presented = await _get_refresh(conn, jti)
            decision = decide(session, presented)
            if session is None:
                return RefreshOutcome(decision, None, None)
            if isinstance(decision, Rotate):
                head = decision.new_head
                # One statement, one round trip: spend the old head, add the new one, move the session.
                await conn.execute(
                    "WITH spent AS (UPDATE refresh_tokens SET rotated_at = %(now)s WHERE jti = %(old)s), "
                    f"added AS (INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) "
                    "VALUES (%(jti)s, %(sid)s, %(gen)s, %(kid)s, %(iat)s, %(exp)s, NULL)) "
                    "UPDATE sessions SET head_jti = %(jti)s, gen = %(gen)s, last_seen_at = %(now)s "
                    "WHERE sid = %(sid)s",
                    {
                        "now": decision.now,
                        "old": session.head_jti,
                        "jti": head.jti,
                        "sid": sid,
                        "gen": head.gen,
                        "kid": head.kid,
                        "iat": head.issued_at,
                        "exp": head.expires_at,
                    },
                )
                session = dataclasses.replace(
                    session, head_jti=head.jti, gen=head.gen, last_seen_at=decision.now
                )
                return RefreshOutcome(decision, session, head)
            if isinstance(decision, Replay):
                return RefreshOutcome(decision, session, await _get_refresh(conn, session.head_jti))
            if isinstance(decision, Reuse) and await _revoke(
                conn, [sid], "reuse", decision.now, decision.revocation_expires_at
            ):
                session = dataclasses.replace(
                    session, state="revoked", revoked_reason="reuse", revoked_at=decision.now
                )
            return RefreshOutcome(decision, session, None)

        return await self._call(run)

    async def get_session(self, sid: str) -> SessionRecord | None:
        if not _storable(sid):  # an id from a URL path, say
            return None

        async def run(conn: Conn) -> SessionRecord | None:
            return await _one(
                conn, _SESSION_ROW, f"SELECT {SESSION_COLUMNS} FROM sessions WHERE sid = %s", sid
            )

        return await self._read(run)

    async def list_sessions(self, sub: str, *, include_revoked: bool = False) -> list[SessionRecord]:
        query = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE sub = %s"
        if not include_revoked:
            query += " AND state = 'active'"
        query += f" {_SESSION_ORDER}"

        async def run(conn: Conn) -> list[SessionRecord]:
            return await _all(conn, _SESSION_ROW, query, sub)

        return await self._read(run)

    async def list_all_sessions(self, *, include_revoked: bool = False) -> list[SessionRecord]:
        query = f"SELECT {SESSION_COLUMNS} FROM sessions"
        if not include_revoked:
            query += " WHERE state = 'active'"
        query += f" {_SESSION_ORDER}"

        async def run(conn: Conn) -> list[SessionRecord]:
            return await _all(conn, _SESSION_ROW, query)

        return await self._read(run)

    async def revoke_session(
        self, sid: str, reason: RevokedReason, now: float, revocation_expires_at: float
    ) -> bool:
        async def run(conn: Conn) -> bool:
            return bool(await _revoke(conn, [sid], reason, now, revocation_expires_at))

        return await self._call(run)

    async def revoke_subject(
        self, sub: str, reason: RevokedReason, now: float, revocation_expires_at: float
    ) -> list[str]:
        async def run(conn: Conn) -> list[str]:
            cur = await conn.execute(
                f"SELECT sid FROM sessions WHERE sub = %s AND state = 'active' {_SESSION_ORDER}", (sub,)
            )
            sids = [sid for (sid,) in await cur.fetchall()]
            return await _revoke(conn, sids, reason, now, revocation_expires_at)

        return await self._call(run)

    # -- revocations -----------------------------------------------------------------------------

    async def revoke_access_token(self, jti: str, expires_at: float) -> None:
        async def run(conn: Conn) -> None:
            await _add_revocations(conn, "jti", [jti], expires_at)

        await self._call(run)

    async def is_access_token_revoked(self, jti: str, now: float) -> bool:
        async def run(conn: Conn) -> bool:
            cur = await conn.execute(
                "SELECT 1 FROM revocations WHERE value = %s AND kind = 'jti' AND expires_at > %s", (jti, now)
            )
            return await cur.fetchone() is not None

        return await self._read(run)

    async def revocations_since(self, seq: int, now: float, limit: int = 1000) -> list[Revocation]:
        async def run(conn: Conn) -> list[Revocation]:
            return await _all(
                conn,
                _REVOCATION_ROW,
                "SELECT seq, kind, value, expires_at FROM revocations "
                "WHERE seq > %s AND expires_at > %s ORDER BY seq LIMIT %s",
                seq,
                now,
                limit,
            )

        return await self._read(run)

    async def revocation_head(self) -> int:
        async def run(conn: Conn) -> int:
            # The identity's sequence: never below a committed number (a rolled-back one may pass them).
            cur = await conn.execute(
                "SELECT pg_sequence_last_value(pg_get_serial_sequence('revocations', 'seq')::regclass)"
            )
            row = await cur.fetchone()
            return int(row[0]) if row is not None and row[0] is not None else 0

        return await self._read(run)

    # -- rate limits -----------------------------------------------------------------------------

    async def rate_limit_take(self, key: str, limit: RateLimit, now: float) -> RateLimitResult:
        async def run(conn: Conn) -> RateLimitResult:
            return await _take(conn, key, limit, now)

        # One statement, atomic on its own: no transaction around it (that would cost two round trips).
        return await self._read(run)

    async def prune(self, now: float) -> int:
        async def run(conn: Conn) -> int:
            count = (await conn.execute("DELETE FROM rate_limits WHERE tat <= %s", (micros(now),))).rowcount
            for query in (
                "DELETE FROM sessions WHERE absolute_expires_at <= %s",
                "DELETE FROM refresh_tokens AS r WHERE r.expires_at <= %s "
                "OR NOT EXISTS (SELECT 1 FROM sessions AS s WHERE s.sid = r.sid)",
                "DELETE FROM revocations WHERE expires_at <= %s",
            ):
                count += (await conn.execute(query, (now,))).rowcount
            return count

        return await self._call(run)

    # -- keys ------------------------------------------------------------------------------------

    async def list_keys(self) -> list[StoredKey]:
        return await self._read(_list_keys)

    async def add_keys(self, keys: Sequence[StoredKey]) -> None:
        async def run(conn: Conn) -> None:
            await _take_turn(conn, "signing_keys")
            for key in keys:
                await _insert_key(conn, key)

        await self._call(run)

    async def delete_keys(self, kids: Sequence[str]) -> int:
        async def run(conn: Conn) -> int:
            await _take_turn(conn, "signing_keys")
            cur = await conn.execute("DELETE FROM signing_keys WHERE kid = ANY(%s)", (list(set(kids)),))
            return cur.rowcount

        return await self._call(run)

    async def ensure_keys(self, candidates: Sequence[StoredKey]) -> list[StoredKey]:
        async def run(conn: Conn) -> list[StoredKey]:
            # In turn with other processes: two starting together must not both add a key.
            await _take_turn(conn, "signing_keys")
            for key in candidates:
                cur = await conn.execute(
                    "SELECT 1 FROM signing_keys WHERE use = %s AND alg = %s AND active", (key.use, key.alg)
                )
                if await cur.fetchone() is None:
                    await _insert_key(conn, key)
            return await _list_keys(conn)

        return await self._call(run)

    # -- users -----------------------------------------------------------------------------------

    async def get_user(self, username: str) -> UserRecord | None:
        if not _storable(username):  # a name from a login form, say
            return None

        async def run(conn: Conn) -> UserRecord | None:
            return await _one(
                conn, _USER_ROW, f"SELECT {USER_COLUMNS} FROM users WHERE username = %s", username
            )

        return await self._read(run)

    async def add_user(self, user: UserRecord) -> bool:
        async def run(conn: Conn) -> bool:
            cur = await conn.execute(
                f"INSERT INTO users ({USER_COLUMNS}) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (user.username, user.password_hash, user.created_at, user.disabled),
            )
            return cur.rowcount == 1

        return await self._call(run)

    async def update_user(
        self, username: str, *, password_hash: str | None = None, disabled: bool | None = None
    ) -> bool:
        async def run(conn: Conn) -> bool:
            cur = await conn.execute(
                "UPDATE users SET password_hash = COALESCE(%s, password_hash), "
                "disabled = COALESCE(%s, disabled) WHERE username = %s",
                (password_hash, disabled, username),
            )
            return cur.rowcount == 1

        return await self._call(run)

    async def list_users(self) -> list[UserRecord]:
        async def run(conn: Conn) -> list[UserRecord]:
            return await _all(conn, _USER_ROW, f"SELECT {USER_COLUMNS} FROM users ORDER BY username")

        return await self._read(run)


_TAKE = """
INSERT INTO rate_limits AS b (key, tat) VALUES (%(key)s, %(now)s + %(t)s)
ON CONFLICT (key) DO UPDATE SET tat = GREATEST(b.tat, %(now)s) + %(t)s
WHERE GREATEST(b.tat, %(now)s) + %(t)s - %(tau)s <= %(now)s
RETURNING tat
"""


async def _take(conn: Conn, key: str, limit: RateLimit, now: float) -> RateLimitResult:
    """One call from the bucket ``key``: one statement, atomic even alone.

    ``ON CONFLICT`` locks the bucket's row and judges its latest version, so takes from any number of
    processes are applied one after the other; a refused take writes nothing.
    """
    if not _storable(key):
        raise ValueError("a rate-limit key cannot hold NUL")
    now_us = micros(now)
    params = {"key": key, "now": now_us, "t": limit.interval_us, "tau": limit.tolerance_us}
    cur = await conn.execute(_TAKE, params)
    if await cur.fetchone() is not None:
        return RateLimitResult(True)
    # Refused: how long until a call would pass, from the bucket as it is now.
    return RateLimitResult.refused(limit.wait_us(await _bucket(conn, key), now_us))


async def _bucket(conn: Conn, key: str) -> int | None:
    """A bucket's TAT (microseconds), or ``None`` if there is none (``key`` is storable: see ``_take``)."""
    cur = await conn.execute("SELECT tat FROM rate_limits WHERE key = %s", (key,))
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def _migrate(conn: Conn) -> None:
    """Bring the current schema up to date; the caller runs this in one transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
    # Looked up in the current schema only (not the whole search_path), where CREATE TABLE puts it.
    cur = await conn.execute(
        "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'keyturn_schema_version'"
    )
    if await cur.fetchone() is None:
        await conn.execute("CREATE TABLE keyturn_schema_version (version INTEGER NOT NULL)")
        await conn.execute("INSERT INTO keyturn_schema_version (version) VALUES (0)")
    row = await (await conn.execute("SELECT version FROM keyturn_schema_version")).fetchone()
    version: int = row[0] if row else 0
    if version > len(MIGRATIONS):
        raise StoreUnavailable(
            f"the database schema (version {version}) is newer than this Keyturn knows "
            f"(version {len(MIGRATIONS)}): upgrade Keyturn"
        )
    for script in MIGRATIONS[version:]:
        await conn.execute(script)
    if version < len(MIGRATIONS):
        await conn.execute("UPDATE keyturn_schema_version SET version = %s", (len(MIGRATIONS),))


async def _take_turn(conn: Conn, table: str) -> None:
    """Wait until no other transaction writing ``table`` is running; hold the turn until commit."""
    await conn.execute(f"SELECT pg_advisory_xact_lock({_TABLE_LOCK_CLASS}, %s::regclass::oid::int)", (table,))


async def _one(conn: Conn, rows: BaseRowFactory[T], query: str, *params: object) -> T | None:
    async with conn.cursor(row_factory=rows) as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


async def _all(conn: Conn, rows: BaseRowFactory[T], query: str, *params: object) -> list[T]:
    async with conn.cursor(row_factory=rows) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def _list_keys(conn: Conn) -> list[StoredKey]:
    return await _all(conn, _KEY_ROW, f"SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at, added")


async def _get_refresh(conn: Conn, jti: str) -> RefreshRecord | None:
    return await _one(conn, _REFRESH_ROW, f"SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE jti = %s", jti)


async def _insert_refresh(conn: Conn, record: RefreshRecord) -> None:
    await conn.execute(
        f"INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
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


async def _insert_key(conn: Conn, key: StoredKey) -> None:
    await conn.execute(
        f"INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (key.kid, key.use, key.alg, key.material, key.public_jwk, key.created_at, key.active),
    )


async def _revoke(
    conn: Conn, sids: Sequence[str], reason: RevokedReason, now: float, revocation_expires_at: float
) -> list[str]:
    """Revoke those of ``sids`` still active, in that order; return them."""
    revoked = []
    for sid in sids:
        cur = await conn.execute(
            "UPDATE sessions SET state = 'revoked', revoked_reason = %s, revoked_at = %s "
            "WHERE sid = %s AND state = 'active'",
            (reason, now, sid),
        )
        if cur.rowcount == 1:
            revoked.append(sid)
    # The feed's turn comes after every row lock, so whoever holds the turn never waits for a row.
    await _add_revocations(conn, "sid", revoked, revocation_expires_at)
    return revoked


async def _add_revocations(
    conn: Conn, kind: Literal["sid", "jti"], values: Sequence[str], expires_at: float
) -> None:
    """Append to the feed in turn, so sequence numbers commit in order; a ``jti`` is recorded once."""
    if not values:
        return
    await _take_turn(conn, "revocations")
    for value in values:
        await conn.execute(
            "INSERT INTO revocations (kind, value, expires_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (value) WHERE kind = 'jti' DO NOTHING",
            (kind, value, expires_at),
        )


def _storable(text: str) -> bool:
    """Whether PostgreSQL text can hold ``text``: no NUL. Looking up one that cannot finds nothing."""
    return "\x00" not in text


def _reason(exc: BaseException) -> str:
    """The first line of a driver's message (libpq's go on with hints), or the kind of timeout."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["MIGRATIONS", "PostgresStore", "conninfo_from_url"]
