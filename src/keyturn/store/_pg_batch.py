"""The PostgreSQL store's rotations, batched per process: those asked for in one turn of the event loop
go to the server as one statement.

A rotation is one conditional ``UPDATE`` of a session (``Dialect.rotate``): the head moves to the new
token only if it is still the one the refresh read. Each costs the store a round trip, the driver's CPU
for a statement, and a commit that waits for its WAL flush. :class:`Rotations` pays those once per batch,
the way the Redis store's ``_batches`` does for its scripts: the first rotation queued schedules a send
for the loop's next turn, and every rotation queued until then goes with it (at most :data:`BATCH_LIMIT`;
the rest go in further batches at the same time, on other pooled connections) as one statement
(:data:`ROTATE_MANY`), committed alone.

Each row keeps its own condition, and each call its own answer: the statement returns the sessions it
changed, and a call whose session is not among them lost its race (as its own ``UPDATE`` would have
changed no row), which the store handles as before (it decides again, holding the session's row lock).

- Lock order: the statement first locks the batch's session rows in ``sid`` order, before it updates any,
  so two batches over overlapping sessions (two processes) never wait for each other in a cycle.
- One session twice in a batch: only its first rotation goes in the statement. If that one rotated, the
  others lost (the head they read is no longer the head); if not, they go in the next batch, as they
  would have run after it.
- Errors: the statement is atomic. If it fails (after the store's own runs again of a deadlock victim),
  each of its calls fails as its own statement would (``StoreUnavailable``), and none was applied. The
  statement runs under the store's bound of a call (6 s); a refresh waits for its two batches under one
  such bound in all.

:class:`Batches` is the queue, shared with ``_pg_takes`` (the refreshes' first statements, batched too);
:func:`run_flow` runs a refresh's flow with each statement routed to its batch or a pooled connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from psycopg import AsyncConnection

from ..errors import StoreUnavailable
from ._sql import Flow, Query, Row

T = TypeVar("T")
P = TypeVar("P")
A = TypeVar("A")

BATCH_LIMIT = 64
"""Rotations one statement makes at most; more waiting ones go in another statement at the same time."""

Run = Callable[[str, Mapping[str, object]], Awaitable[list[Row]]]
"""Runs one statement, autocommitted, on a pooled connection, and returns its rows (the store's ``_call``)."""

_Item = tuple[Sequence[object], "asyncio.Future[int]"]
_SID = 7  # in a rotation's parameters (``_sql.rotate_params``): the session's id, then the head it read

ROTATE_MANY = """
WITH v AS MATERIALIZED (
    SELECT * FROM unnest(%(jti)s::text[], %(gen)s::bigint[], %(kid)s::text[], %(iat)s::bigint[],
        %(exp)s::bigint[], %(rotated)s::text[], %(now)s::float8[], %(sid)s::text[], %(old)s::text[])
        AS v (jti, gen, kid, iat, exp, rotated, now, sid, old)
), locked AS MATERIALIZED (
    SELECT sid FROM sessions WHERE sid IN (SELECT sid FROM v) ORDER BY sid FOR UPDATE
)
UPDATE sessions AS s SET head_jti = v.jti, gen = v.gen, head_kid = v.kid, head_issued_at = v.iat,
    head_expires_at = v.exp, rotated = v.rotated, last_seen_at = v.now
FROM v
WHERE (SELECT count(*) FROM locked) >= 0
    AND s.sid = v.sid AND s.head_jti = v.old AND s.state = 'active'
RETURNING s.sid
"""
"""Each row of ``v`` as ``Dialect.rotate`` with its parameters. ``locked`` (read whole by the count, a
one-time filter run before the update) takes the rows' locks in ``sid`` order first; the update then
waits for none, and judges each row's condition on its latest committed version."""

_NAMES = ("jti", "gen", "kid", "iat", "exp", "rotated", "now", "sid", "old")


class Batches(Generic[P, A]):
    """Calls queued by callers of one store, sent in batches by :meth:`_send_batch` (a subclass's)."""

    __slots__ = ("_run", "_sending", "_waiting")

    def __init__(self, run: Run) -> None:
        self._run = run
        self._waiting: list[tuple[P, asyncio.Future[A]]] = []
        self._sending: set[asyncio.Task[None]] = set()
        """Batches being sent (held here: the loop keeps only weak references to its tasks)."""

    def call(self, params: P) -> asyncio.Future[A]:
        """Queue a call; the future gets its answer, or the error."""
        future: asyncio.Future[A] = asyncio.get_running_loop().create_future()
        self._queue((params, future))
        return future

    def cancel(self) -> None:
        """Stop every batch (the store is closing): their calls, and those still waiting, fail."""
        waiting, self._waiting = self._waiting, []
        _fail(waiting, RuntimeError("the store is closing"))
        for task in self._sending:
            task.cancel()

    def _queue(self, item: tuple[P, asyncio.Future[A]]) -> None:
        if not self._waiting:  # the first of this turn: the batch leaves on the loop's next turn
            self._start()
        self._waiting.append(item)

    def _start(self) -> None:
        task = asyncio.get_running_loop().create_task(self._send())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self) -> None:
        waiting = self._waiting
        batch = [item for item in waiting[:BATCH_LIMIT] if not item[1].done()]
        del waiting[:BATCH_LIMIT]
        if waiting:  # more than one batch's worth: the rest leave at once too
            self._start()
        if not batch:
            return
        try:
            await self._send_batch(batch)
        except BaseException as exc:
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise

    async def _send_batch(self, batch: list[tuple[P, asyncio.Future[A]]]) -> None:
        raise NotImplementedError


class Rotations(Batches[Sequence[object], int]):
    """Rotations (``_sql.rotate_params``) queued by callers of one store, sent in batches;
    ``await rotations.call(params)`` is the rows it changed (1 or 0), as ``Dialect.rotate`` would answer."""

    __slots__ = ()

    async def _send_batch(self, batch: list[_Item]) -> None:
        first: dict[object, _Item] = {}
        later: list[_Item] = []
        for item in batch:
            sid = item[0][_SID]
            if sid in first:
                later.append(item)
            else:
                first[sid] = item
        rows = [first[sid] for sid in sorted(first)]  # type: ignore[type-var]  # sids are text
        params = {name: [item[0][i] for item in rows] for i, name in enumerate(_NAMES)}
        changed = {sid for (sid,) in await self._run(ROTATE_MANY, params)}
        for row, future in rows:
            if not future.done():
                future.set_result(1 if row[_SID] in changed else 0)
        for item in later:
            if item[0][_SID] in changed:  # after a rotation, no head read before it is the head
                if not item[1].done():
                    item[1].set_result(0)
            else:
                self._queue(item)


async def run_flow(flow: Flow[T], route: Callable[[Query], Awaitable[object]]) -> T:
    """Run ``flow``, each statement it yields by ``route`` (to a batch, or on a pooled connection)."""
    query = next(flow)
    while True:
        answer = await route(query)
        try:
            query = flow.send(answer)
        except StopIteration as done:
            result: T = done.value
            return result


async def drive(conn: AsyncConnection[Any], flow: Flow[T]) -> T:
    """Run ``flow`` on ``conn``: each statement it yields, and its answer sent back (one cursor for all)."""
    cursor = conn.cursor()
    try:
        query = next(flow)
        while True:
            sql, params, fetch = query
            await cursor.execute(sql, params)
            answer: object
            if fetch == "one":
                answer = await cursor.fetchone()
            elif fetch == "count":
                answer = cursor.rowcount
            elif fetch == "all":
                answer = await cursor.fetchall()
            else:
                answer = None
            query = flow.send(answer)
    except StopIteration as done:
        result: T = done.value
        return result


def _fail(items: Sequence[tuple[object, asyncio.Future[Any]]], cause: BaseException) -> None:
    """Each call of ``items`` still waiting fails with a ``StoreUnavailable`` of its own, as its own
    statement would have (a copy of the store's, or one caused by ``cause``)."""
    for _, future in items:
        if future.done():
            continue
        failed = StoreUnavailable(*cause.args) if isinstance(cause, StoreUnavailable) else StoreUnavailable()
        failed.__cause__ = cause.__cause__ if isinstance(cause, StoreUnavailable) else cause
        future.set_exception(failed)


__all__ = ["BATCH_LIMIT", "ROTATE_MANY", "Batches", "Rotations", "drive", "run_flow"]
