"""The PostgreSQL store's takes-and-reads, batched per process as its rotations are (``_pg_batch``).

A refresh's first statement takes its rate limits (each only if the one before it passed) and reads the
session (:func:`take_and_read`). Those a process asks for in one turn of its event loop go as one
statement (:data:`TAKE_AND_READ_MANY`): a function in the store's schema (``keyturn_take_many``, made by a
migration, :data:`TAKE_MANY`) makes the batch's takes one after the other, in the order they were asked,
each as the single statement would (one upsert), so a bucket taken by several calls of a batch (one
address's) answers each as sequential takes would; the statement then reads each call's session (unless
one of its takes refused). Each call gets the row its own statement would have returned. The function is
part of the schema, not of a connection (it was made in ``pg_temp`` per pooled connection before): a
pooler in transaction mode may run each statement on another server connection.

The function first makes the batch's missing buckets (full ones: a bucket whose TAT has passed is the
same as none) and locks them all, each in key order, so two batches never wait for each other in a
cycle over them. Its writes go to the unlogged buckets only: its commit waits for no WAL flush,
and the locks are held no longer than the statement. A failing statement writes nothing (it is one
statement) and fails each of its calls, as ``_pg_batch`` says.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping

from ._pg_batch import Batches
from ._sql import STATE_COLUMNS, USER_ALLOWED, Row

TAKES_FIRST = "WITH t0 AS (INSERT INTO rate_limits"
"""How a take-and-read statement of one call starts (:func:`take_and_read` with takes)."""

TAKE_MANY = """
CREATE OR REPLACE FUNCTION keyturn_take_many(
    items int[], keys text[], nows bigint[], ts bigint[], taus bigint[]
)
RETURNS TABLE (item int, taken int) LANGUAGE plpgsql AS $$
DECLARE
    n int := 0;
    current int := 0;
    refused boolean := false;
BEGIN
    -- Every bucket made first (a full one: a passed TAT is the same as none), then all locked, each in
    -- key order: the takes below then wait for no other batch, and no two batches wait in a cycle.
    INSERT INTO rate_limits (key, tat) SELECT DISTINCT k, 0 FROM unnest(keys) AS k ORDER BY k
    ON CONFLICT (key) DO NOTHING;
    PERFORM 1 FROM rate_limits WHERE key = ANY (keys) ORDER BY key FOR UPDATE;
    FOR i IN 1 .. coalesce(array_length(keys, 1), 0) LOOP
        IF items[i] <> current THEN
            IF current > 0 THEN
                item := current; taken := n; RETURN NEXT;
            END IF;
            current := items[i]; n := 0; refused := false;
        END IF;
        CONTINUE WHEN refused;
        INSERT INTO rate_limits AS b (key, tat) VALUES (keys[i], nows[i] + ts[i])
        ON CONFLICT (key) DO UPDATE SET tat = GREATEST(b.tat, nows[i]) + ts[i]
        WHERE GREATEST(b.tat, nows[i]) + ts[i] - taus[i] <= nows[i];
        IF FOUND THEN n := n + 1; ELSE refused := true; END IF;
    END LOOP;
    IF current > 0 THEN
        item := current; taken := n; RETURN NEXT;
    END IF;
END $$
"""
"""The batch's takes in order (``items``: the 1-based call each take is of, ascending), each as ``_TAKE``:
for each call, how many of its takes passed. A migration of the PostgreSQL store (``MIGRATIONS``) makes it
in the current schema, beside ``rate_limits`` (resolved by the caller's ``search_path``, as every table
is), and each open of a schema past that migration makes it again if it is missing; a change to it needs a
migration of its own (``CREATE OR REPLACE`` again), never an edit of this."""

_COLUMNS = ", ".join(f"s.{name.strip()}" for name in STATE_COLUMNS.split(","))

TAKE_AND_READ_MANY = f"""
WITH r AS MATERIALIZED (
    SELECT * FROM keyturn_take_many(%(items)s::int[], %(keys)s::text[], %(nows)s::bigint[],
        %(ts)s::bigint[], %(taus)s::bigint[])
)
SELECT v.item, r.taken, {_COLUMNS},
    EXISTS (SELECT 1 FROM users WHERE username = v.username AND NOT disabled)
FROM unnest(%(sids)s::text[], %(users)s::text[], %(wanted)s::int[]) WITH ORDINALITY
    AS v (sid, username, wanted, item)
JOIN r ON r.item = v.item
LEFT JOIN sessions AS s ON s.sid = v.sid AND r.taken = v.wanted
"""
"""Each call's row as its own take-and-read would return it, after its call number: how many takes
passed, the session's state (all ``NULL`` if there is none or a take refused), whether its user may hold
a session (dropped for a call that did not ask)."""


@functools.cache
def take_and_read(takes: int, user: bool = False) -> str:
    """One statement: ``takes`` rate-limit takes (as ``_TAKE``; each only if the one before it passed),
    then one row: how many passed, and the session's state (all ``NULL`` if there is no such session, or
    if a take refused), with ``user``, then whether ``%(user)s`` may hold a session (``USER_ALLOWED``)."""
    ctes = []
    for i in range(takes):
        after = f" WHERE EXISTS (SELECT FROM t{i - 1})" if i else ""
        n, t = f"%(n{i})s", f"%(t{i})s"
        ctes.append(
            f"t{i} AS (INSERT INTO rate_limits AS b (key, tat) SELECT %(k{i})s, {n} + {t}{after} "
            f"ON CONFLICT (key) DO UPDATE SET tat = GREATEST(b.tat, {n}) + {t} "
            f"WHERE GREATEST(b.tat, {n}) + {t} - %(u{i})s <= {n} RETURNING 1)"
        )
    passed = " + ".join(f"(SELECT count(*) FROM t{i})" for i in range(takes)) or "0"
    columns = ", ".join(f"s.{name.strip()}" for name in STATE_COLUMNS.split(","))
    if user:
        columns += ", " + USER_ALLOWED.replace("%s", "%(user)s")
    read = f" AND EXISTS (SELECT FROM t{takes - 1})" if takes else ""  # nothing read after a refusal
    return (
        f"WITH {', '.join(ctes)} SELECT {passed}, {columns} "
        f"FROM (VALUES (1)) AS one LEFT JOIN sessions AS s ON s.sid = %(sid)s{read}"
    )


class TakeReads(Batches[Mapping[str, object], Row]):
    """Take-and-reads (their statement's parameters: ``sid``, ``k0``/``n0``/``t0``/``u0``… and ``user``
    if asked) queued by callers of one store, sent in batches; each answered with its statement's row."""

    __slots__ = ()

    async def _send_batch(self, batch: list[tuple[Mapping[str, object], asyncio.Future[Row]]]) -> None:
        items: list[int] = []
        keys: list[object] = []
        nows: list[object] = []
        ts: list[object] = []
        taus: list[object] = []
        sids: list[object] = []
        users: list[object] = []
        wanted: list[int] = []
        for call, (params, _) in enumerate(batch, 1):
            n = 0
            while f"k{n}" in params:
                items.append(call)
                keys.append(params[f"k{n}"])
                nows.append(params[f"n{n}"])
                ts.append(params[f"t{n}"])
                taus.append(params[f"u{n}"])
                n += 1
            sids.append(params["sid"])
            users.append(params.get("user"))
            wanted.append(n)
        params = {
            "items": items,
            "keys": keys,
            "nows": nows,
            "ts": ts,
            "taus": taus,
            "sids": sids,
            "users": users,
            "wanted": wanted,
        }
        rows = {row[0]: row[1:] for row in await self._run(TAKE_AND_READ_MANY, params)}
        for call, (asked, future) in enumerate(batch, 1):
            row = rows[call]
            if not future.done():
                future.set_result(row if "user" in asked else row[:-1])


__all__ = ["TAKES_FIRST", "TAKE_AND_READ_MANY", "TAKE_MANY", "TakeReads", "take_and_read"]
