"""The PostgreSQL store's schema: its migrations, run in ``PostgresStore.open()`` and ``keyturn migrate``.

Migrations run in one transaction under a database-wide advisory lock, so several processes starting at
once migrate once. Tables live in the connection's current schema (the first of ``search_path``).
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from ..errors import StoreUnavailable
from ._pg_takes import TAKE_MANY
from ._pg_url import reason

logger = logging.getLogger("keyturn.store")

# An advisory lock key of its own (a bigint): the tables may not exist yet.
_MIGRATION_LOCK = int.from_bytes(b"keyturn", "big")

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
    # State per session, not per refresh token (issue 21): the session keeps its head's signing fields
    # and its recently rotated generations (see keyturn.store._chain), taken from refresh_tokens, which
    # goes. Live sessions keep refreshing; a token rotated just before keeps its grace replay. Every
    # refresh now updates its session row: the fill factor leaves room for HOT updates.
    """
    ALTER TABLE sessions
        ADD COLUMN head_kid TEXT NOT NULL DEFAULT '',
        ADD COLUMN head_issued_at BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN head_expires_at BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN rotated TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions SET (fillfactor = 80);
    UPDATE sessions AS s SET head_kid = r.kid, head_issued_at = r.issued_at, head_expires_at = r.expires_at
        FROM refresh_tokens AS r WHERE r.jti = s.head_jti;
    UPDATE sessions AS s SET rotated = o.entries FROM (
        SELECT r.sid, string_agg(r.gen || ' ' || r.jti || ' ' || r.rotated_at::text, ',') AS entries
        FROM refresh_tokens AS r JOIN sessions AS t ON t.sid = r.sid
        WHERE r.rotated_at IS NOT NULL AND r.gen >= t.gen - 16
        GROUP BY r.sid
    ) AS o WHERE o.sid = s.sid;
    DROP TABLE refresh_tokens;
    """,
    # Registered OAuth 2.0 clients (issue 17): a confidential client's keyed secret hash, NULL for public.
    """
    CREATE TABLE oauth_clients (
        client_id TEXT PRIMARY KEY,
        secret_hash TEXT,
        created_at DOUBLE PRECISION NOT NULL
    );
    """,
    # DPoP (issue 17): the key a session is bound to, and the proofs' jti seen lately (RFC 9449).
    """
    ALTER TABLE sessions ADD COLUMN jkt TEXT;
    CREATE TABLE dpop_proofs (
        key TEXT PRIMARY KEY,
        expires_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX dpop_proofs_by_expiry ON dpop_proofs (expires_at);
    """,
    # A registered client's own DPoP policy (issue 17): 'required' makes its sessions start with a proof.
    """
    ALTER TABLE oauth_clients ADD COLUMN dpop TEXT NOT NULL DEFAULT 'optional';
    """,
    # The function batches of takes call (_pg_takes), in the schema: it was made in pg_temp by each pooled
    # connection, which a pooler in transaction mode does not keep. Where PL/pgSQL cannot be used, this
    # one is passed over (migrate), the store takes one refresh at a time, and each later open tries again.
    TAKE_MANY,
)
_TAKE_MANY_AT = MIGRATIONS.index(TAKE_MANY) + 1
"""The version whose migration makes the batches' function, in PL/pgSQL: passed over, with a warning, where
the server has no PL/pgSQL or the role may not use it; the store then works without it (``batches_takes``)
and each open of a schema at this version or later that lacks it makes it again if it can (the same DDL,
:data:`TAKE_MANY`: a migration that replaces the function must be what that retry runs too)."""
_NO_PLPGSQL = "PL/pgSQL is not installed, or this role may not use it"
_ALONE = "each refresh takes its rate limits in a statement of its own (no batches)"


async def migrate(conn: AsyncConnection[TupleRow]) -> None:
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
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        if number == _TAKE_MANY_AT and not await _plpgsql_usable(conn):
            logger.warning("PostgreSQL schema version %d passed over: %s; %s", number, _NO_PLPGSQL, _ALONE)
            continue
        await conn.execute(script)  # any other failure (a missing privilege, say) stops the upgrade
    if version < len(MIGRATIONS):
        await conn.execute("UPDATE keyturn_schema_version SET version = %s", (len(MIGRATIONS),))
    if version >= _TAKE_MANY_AT and not await batches_takes(conn):
        await _make_take_many_again(conn)


async def _make_take_many_again(conn: AsyncConnection[TupleRow]) -> None:
    """The batches' function, missing from a schema past its migration (passed over then, or dropped
    since), made as that migration makes it; if PL/pgSQL still cannot be used, or the role may not create
    in the schema (an application role beside the owner), a warning and the store works without it. Any
    other failure stops the open, as a migration's does."""
    missing = (
        "PostgreSQL function keyturn_take_many (schema version %d) is missing and cannot be made: %s; %s"
    )
    if not await _plpgsql_usable(conn):
        logger.warning(missing, _TAKE_MANY_AT, _NO_PLPGSQL, _ALONE)
        return
    try:
        async with conn.transaction():  # a savepoint: a refusal leaves the open's transaction usable
            await conn.execute(TAKE_MANY)
    except psycopg.errors.InsufficientPrivilege as exc:
        logger.warning(missing, _TAKE_MANY_AT, reason(exc), _ALONE)
        return
    logger.info(
        "PostgreSQL function keyturn_take_many (schema version %d) made: it was missing", _TAKE_MANY_AT
    )


async def batches_takes(conn: AsyncConnection[TupleRow]) -> bool:
    """Whether the schema has the function batches of takes call (a schema migrated without PL/pgSQL,
    or one whose function was dropped, has not)."""
    cur = await conn.execute(
        "SELECT 1 FROM pg_proc JOIN pg_namespace AS n ON n.oid = pronamespace "
        "WHERE proname = 'keyturn_take_many' AND n.nspname = current_schema()"  # its name as is, any case
    )
    return await cur.fetchone() is not None


async def _plpgsql_usable(conn: AsyncConnection[TupleRow]) -> bool:
    # CASE: has_language_privilege raises for a language the server does not have.
    cur = await conn.execute(
        "SELECT CASE WHEN EXISTS (SELECT FROM pg_language WHERE lanname = 'plpgsql') "
        "THEN has_language_privilege('plpgsql', 'USAGE') ELSE false END"
    )
    row = await cur.fetchone()
    return bool(row and row[0])


__all__ = ["MIGRATIONS", "batches_takes", "migrate"]
