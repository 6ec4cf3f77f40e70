"""``postgresql://…``: one database shared by every process of a service.

How each call stays atomic when many processes share the database:

- Every write is one transaction (``READ COMMITTED``), run on a connection from a small pool; a call that
  fails part-way rolls back whole.
- ``refresh`` takes its rate limits and reads the session (its refresh chain with it, and, asked for the
  built-in users' subject check, whether the user may hold a session) in one statement, and decides; a
  rotation is then one ``UPDATE`` that changes the row only if its head is still the one read (two
  round trips, no transaction). Each of the two goes with the process's other calls of that moment as
  one statement (``_pg_takes``, ``_pg_batch``: one round trip, one commit for them all, each call still
  answered on its own). If another refresh moved the head in between, or the decision is a reuse, the
  refresh runs again (without the takes, made once) in a transaction that locks the session's row
  (``SELECT … FOR UPDATE``), so concurrent refreshes of one
  session each decide on what the previous one committed: one rotates, the rest replay. A
  deadlock or serialisation failure runs the whole transaction again (``decide`` too).
- Writers of the revocation feed and of the signing keys first take a transaction-scoped advisory lock
  named after their table (in this schema), so they go one at a time and readers never wait: two
  processes starting together add one key, not one each, and sequence numbers of the feed become visible
  in increasing order, so a validator that has read up to ``N`` never later finds a smaller number
  committed behind it. A writer takes that lock last, after any session row it locks, so it cannot
  deadlock with ``refresh``.
- Migrations (``_pg_schema``) run in ``open()``, in one transaction under a database-wide advisory lock:
  several processes starting at once migrate once. The batches' function, if missing (PL/pgSQL could not
  be used when its migration ran, or it was dropped), is made again there if it can be.
- Nothing lives in a server connection's session (every lock is a transaction's, the batches' function is
  in the schema), so a pooler in transaction mode may stand between (``?pooler=transaction``, ``_pg_url``).

Tables live in the connection's current schema (the first of ``search_path``), never a named one, so a URL
such as ``postgresql://host/db?options=-csearch_path%3Dkeyturn`` puts a service in a schema of its own.

Every call is bounded in time: connections time out after ``CONNECT_TIMEOUT_S``, statements after
``STATEMENT_TIMEOUT_MS`` (``_pg_url``; unless the URL sets its own or says ``pooler=transaction``), and the
whole call, its wait for one of the pool's ``POOL_MAX_SIZE`` connections included, after
``CALL_TIMEOUT_S`` (to which psycopg may add up to 10 s trying to cancel the query of a server that does
not answer at all). Any driver error or timeout becomes ``StoreUnavailable``; the pool checks a connection
that has been idle for ``IDLE_CHECK_AFTER_S`` or more before lending it, replaces broken ones and
reconnects on demand, so the store recovers by itself when the server comes back.

Claims are kept as JSON text, exactly as the SQLite store keeps them. The calls themselves are the flows
both SQL stores share (``_sql_store``); this module keeps what is PostgreSQL's own: its dialect (the row
lock, advisory turns, the one-statement take), its DDL, and the pool that drives the flows.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeAlias, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from ..errors import StoreUnavailable
from ..ratelimit import RateLimit, micros
from ..typing import Decide, Limited, RateLimitResult, RateLimitTake, RefreshOutcome
from ._pg_batch import Rotations, drive, run_flow
from ._pg_schema import MIGRATIONS, batches_takes, migrate
from ._pg_takes import TAKES_FIRST, TakeReads, take_and_read
from ._pg_url import conninfo_from_url, pooler_from_url, reason
from ._sql import Dialect, Flow, Query, Row
from ._sql_store import SQLStore, refresh

T = TypeVar("T")
Conn: TypeAlias = AsyncConnection[TupleRow]

POOL_TIMEOUT_S = 5.0
RECONNECT_TIMEOUT_S = 10.0  # the pool then stops retrying in the background and reconnects on demand
IDLE_CHECK_AFTER_S = 1.0  # a pooled connection idle this long is checked before it is lent again
CALL_TIMEOUT_S = 6.0  # a little over the statement timeout, so the server reports its own first
POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 10
ATTEMPTS = 3  # a transaction chosen as a deadlock victim is run again, up to this many times in all

logger = logging.getLogger("keyturn.store")
_NO_BATCHES = "%s: each refresh takes its rate limits in a statement of its own (no batches)"

# Advisory lock keys: a class for locks named after a table (the second key is the table's oid, so each
# schema has its own); migrations take their own (``_pg_schema``).
_TABLE_LOCK_CLASS = int.from_bytes(b"kt", "big")


class PostgresDialect(Dialect):
    """PostgreSQL's statements: the session row lock, advisory turns, one-statement rotation and takes."""

    lock_session = " FOR UPDATE"
    session_order = "ORDER BY created_at, sid"
    key_order = "ORDER BY created_at, added"
    # The identity's sequence: never below a committed number (a rolled-back one may pass them).
    revocation_head = "SELECT pg_sequence_last_value(pg_get_serial_sequence('revocations', 'seq')::regclass)"

    def __init__(self) -> None:
        super().__init__()
        self.insert_revocation += " ON CONFLICT (value) WHERE kind = 'jti' DO NOTHING"

    def storable(self, text: str) -> bool:
        """PostgreSQL text cannot hold NUL."""
        return "\x00" not in text

    def take(self, key: str, limit: RateLimit, now: float) -> Flow[RateLimitResult]:
        """One call from the bucket ``key``: one statement, atomic even alone.

        ``ON CONFLICT`` locks the bucket's row and judges its latest version, so takes from any number of
        processes are applied one after the other; a refused take writes nothing.
        """
        if not self.storable(key):
            raise ValueError("a rate-limit key cannot hold NUL")
        now_us = micros(now)
        params = {"key": key, "now": now_us, "t": limit.interval_us, "tau": limit.tolerance_us}
        if (yield Query(_TAKE, params, "one")) is not None:
            return RateLimitResult(True)
        # Refused: how long until a call would pass, from the bucket as it is now.
        row = yield Query("SELECT tat FROM rate_limits WHERE key = %s", (key,), "one")
        return RateLimitResult.refused(limit.wait_us(int(row[0]) if row else None, now_us))

    def take_and_read(
        self, sid: str, limits: Sequence[RateLimitTake], user: str | None = None
    ) -> Flow[tuple[Limited | None, Row | None]]:
        """The takes and the session's read in one statement, one round trip (see ``_take_and_read``).

        Each take is made only if the one before it passed; a refused one writes nothing. The bucket rows
        are locked until the statement ends, and it waits for nothing else: it reads the session without
        locking it, and writes only the unlogged buckets, so its commit waits for no WAL flush.
        """
        if not all(self.storable(take.key) for take in limits):
            raise ValueError("a rate-limit key cannot hold NUL")
        params: dict[str, object] = {"sid": sid}
        for i, take in enumerate(limits):
            params[f"k{i}"], params[f"n{i}"] = take.key, micros(take.now)
            params[f"t{i}"], params[f"u{i}"] = take.limit.interval_us, take.limit.tolerance_us
        if user is not None:
            params["user"] = user if self.storable(user) else ""  # "": no such user can be stored
        row = yield Query(take_and_read(len(limits), user is not None), params, "one")
        taken = int(row[0])
        if taken == len(limits):
            return None, (row[1:] if row[1] is not None else None)
        # Refused: how long until a call would pass, from the bucket as it is now.
        refused = limits[taken]
        now_us = micros(refused.now)
        found = yield Query("SELECT tat FROM rate_limits WHERE key = %s", (refused.key,), "one")
        wait = refused.limit.wait_us(int(found[0]) if found else None, now_us)
        return Limited(refused, RateLimitResult.refused(wait).retry_after), None

    def take_turn(self, table: str) -> Flow[None]:
        """Wait until no other transaction writing ``table`` is running; hold the turn until commit.

        Writers of the feed and of the keys go one at a time, readers never wait: see the module.
        """
        yield Query(_TAKE_TURN, (table,))


_POSTGRES = PostgresDialect()


class PostgresStore(SQLStore):
    """A store in a PostgreSQL database, shared safely by several processes."""

    dialect = _POSTGRES
    # Made in open(), on the loop that serves; a call before then stops at the missing pool.
    _turns: asyncio.Semaphore

    def __init__(self, conninfo: str, *, prepare: bool = True) -> None:
        """``prepare``: let psycopg prepare a statement run often on a connection (the default: it saves the
        server parsing and planning it again); off behind a pooler in transaction mode, which may send
        the next run to another server connection, where no such statement was prepared."""
        self._conninfo = conninfo
        self._connect: dict[str, object] = {"autocommit": True}
        if not prepare:
            self._connect["prepare_threshold"] = None
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._returned_at: weakref.WeakKeyDictionary[Conn, float] = weakref.WeakKeyDictionary()
        self._rotations = Rotations(self._fetch_all)  # the refreshes' rotations, sent in batches
        self._takes = TakeReads(self._fetch_all)  # and their takes-and-reads
        self._takes_batched = True  # until the function they call is found missing (no PL/pgSQL)

    @classmethod
    def from_url(cls, url: str) -> PostgresStore:
        return cls(conninfo_from_url(url), prepare=pooler_from_url(url) != "transaction")

    # -- plumbing --------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        # Migrate on a connection of its own first: a failure to connect then says why.
        try:
            async with asyncio.timeout(CALL_TIMEOUT_S):
                conn = await AsyncConnection.connect(self._conninfo, **self._connect)  # type: ignore[arg-type]
                async with conn, conn.transaction():
                    await migrate(conn)
                    batched = await batches_takes(conn)
        except (psycopg.Error, TimeoutError) as exc:
            raise StoreUnavailable(f"cannot open the PostgreSQL store: {reason(exc)}") from exc
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self._conninfo,
            min_size=POOL_MIN_SIZE,
            max_size=POOL_MAX_SIZE,
            kwargs=self._connect,
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
            raise StoreUnavailable(f"cannot open the PostgreSQL store: {reason(exc)}") from exc
        except BaseException:
            await pool.close()
            raise
        # A turn per pooled connection: calls beyond the pool's size wait here, on a plain semaphore,
        # rather than in the pool's own queue, which costs a condition, a lock and a task per wait.
        self._turns = asyncio.Semaphore(POOL_MAX_SIZE)
        self._rotations = Rotations(self._fetch_all)
        self._takes = TakeReads(self._fetch_all)
        self._takes_batched = batched  # if not, migrate() said why, in a warning
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
        self._rotations.cancel()
        self._takes.cancel()
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
                async with asyncio.timeout(CALL_TIMEOUT_S), self._turns, pool.connection() as conn:
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

    async def _write(self, flow: Callable[[], Flow[T]]) -> T:
        return await self._call(lambda conn: drive(conn, flow()))

    async def _fetch_all(self, sql: str, params: Mapping[str, object]) -> list[Row]:
        """One statement, autocommitted: its rows (a batch of rotations)."""
        return await self._call(lambda conn: _fetch(conn, sql, params), transaction=False)

    async def _read(self, flow: Callable[[], Flow[T]]) -> T:
        return await self._call(lambda conn: drive(conn, flow()), transaction=False)

    async def refresh(
        self,
        sid: str,
        jti: str,
        decide: Decide,
        takes: Sequence[RateLimitTake] = (),
        *,
        user: str | None = None,
    ) -> RefreshOutcome:
        # Unlocked first, out of any transaction: the takes and the session's read in one statement, then
        # (a rotation) one conditional update, sent with the process's other rotations of the moment
        # (``_pg_batch``: one statement, one commit for them all). The takes are never in a transaction
        # with the update: the lock on a busy bucket (one address's) would then be held until the
        # update's commit has flushed the WAL, and queue every other refresh from that address behind it.
        # If the head moved between the read and the update, or the decision is a reuse (which revokes,
        # in a transaction), the refresh runs again, without the takes (made once), holding the session's
        # row lock. The subject check (``user``) is read with the session, in that first statement; the
        # locked run comes only after it passed, and does not ask again.
        first = refresh(self.dialect, sid, jti, decide, takes, locked=False, user=user)
        try:
            async with asyncio.timeout(CALL_TIMEOUT_S):  # the two batches' waits, bounded as one call
                outcome = await run_flow(first, self._route)
        except TimeoutError as exc:
            raise StoreUnavailable() from exc
        if outcome is None:
            outcome = await self._write(lambda: refresh(self.dialect, sid, jti, decide))
        if outcome is None:
            raise RuntimeError(f"session {sid} changed under its own lock")
        return outcome

    def _route(self, query: Query) -> Awaitable[object]:
        """Where an unlocked refresh's statement goes: a rotation or a take-and-read in a batch (see
        ``_pg_batch``, ``_pg_takes``), anything else (a read without takes) on a pooled connection."""
        if query.sql == self.dialect.rotate:
            return self._rotations.call(query.params)  # type: ignore[arg-type]  # a tuple
        if self._takes_batched and query.sql.startswith(TAKES_FIRST):
            return self._take_and_read(query)
        return self._call(lambda conn: drive(conn, _one(query)), transaction=False)

    async def _take_and_read(self, query: Query) -> object:
        """A take-and-read in a batch; if the batch's function is missing (a schema migrated where PL/pgSQL
        could not be used, or the function dropped), this one and every later one alone, as before the
        batches: the failed statement applied nothing, so each runs again as its own statement."""
        try:
            return await self._takes.call(query.params)  # type: ignore[arg-type]  # a dict
        except StoreUnavailable as exc:
            if not isinstance(exc.__cause__, psycopg.errors.UndefinedFunction):
                raise
            if self._takes_batched:
                self._takes_batched = False
                logger.warning(_NO_BATCHES, "keyturn_take_many was found missing")
        return await self._call(lambda conn: drive(conn, _one(query)), transaction=False)

    async def rate_limit_take(self, key: str, limit: RateLimit, now: float) -> RateLimitResult:
        # One statement, atomic on its own: no transaction around it (that would cost two round trips).
        return await self._read(lambda: self.dialect.take(key, limit, now))


_TAKE_TURN = f"SELECT pg_advisory_xact_lock({_TABLE_LOCK_CLASS}, %s::regclass::oid::int)"

_TAKE = """
INSERT INTO rate_limits AS b (key, tat) VALUES (%(key)s, %(now)s + %(t)s)
ON CONFLICT (key) DO UPDATE SET tat = GREATEST(b.tat, %(now)s) + %(t)s
WHERE GREATEST(b.tat, %(now)s) + %(t)s - %(tau)s <= %(now)s
RETURNING tat
"""


def _one(query: Query) -> Flow[object]:
    return (yield query)


async def _fetch(conn: Conn, sql: str, params: Mapping[str, object]) -> list[Row]:
    return await (await conn.execute(sql, params)).fetchall()


__all__ = ["MIGRATIONS", "PostgresDialect", "PostgresStore", "conninfo_from_url", "pooler_from_url"]
