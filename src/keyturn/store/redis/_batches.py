"""Auto-pipelining: the commands callers send during one turn of the event loop go to Redis as one batch.

redis-py's asyncio client costs far more CPU per call (taking a pooled connection, checking it, writing,
reading, giving it back) than Redis takes to run a short script. :class:`Batches` pays that once per batch:
the first command queued schedules a send for the loop's next turn, and everything queued until then goes
with it (at most :data:`BATCH_LIMIT` commands a batch; the rest go in further batches sent at the same time),
written at once on one pooled connection, its replies read back in order.

Each command stays its own: an error reply (``NoScriptError`` among them) fails that command's call only.
A batch whose connection fails, or whose replies have not all arrived within ``REPLY_TIMEOUT``, fails each
of its calls still waiting with ``StoreUnavailable`` and is never sent again (a script could apply twice);
its connection is closed before it goes back to the pool, so a late reply is never read as the answer to a
later command. A caller that gives up (its own bound, a cancellation) leaves its batch running for the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import redis.asyncio
from hiredis import pack_command
from redis.exceptions import ResponseError

from ...errors import StoreUnavailable
from . import _records

BATCH_LIMIT = 64
"""Commands one batch sends at most; more waiting ones go in another batch on another connection."""

Command = tuple[str | int, ...]
_Item = tuple[Command, "asyncio.Future[object]"]


_pack = cast(Callable[[Command], bytes], pack_command)
"""One command in Redis's protocol: hiredis's packer (part of ``keyturn[redis]``, as the reply parser),
several times cheaper than redis-py's."""


class Batches:
    """Commands queued by callers on one client, sent in batches; ``await batches.call(...)`` is one call."""

    __slots__ = ("_pool", "_sending", "_waiting")

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._pool = client.connection_pool
        self._waiting: list[_Item] = []
        self._sending: set[asyncio.Task[None]] = set()
        """Batches being sent (held here: the loop keeps only weak references to its tasks)."""

    def call(self, *command: str | int) -> asyncio.Future[object]:
        """Queue ``command``; the future gets its reply, its error reply, or ``StoreUnavailable``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        if not self._waiting:  # the first of this turn: the batch leaves on the loop's next turn
            self._start(loop)
        self._waiting.append((command, future))
        return future

    def cancel(self) -> None:
        """Stop every batch (the store is closing): their calls, and those still waiting, get
        ``StoreUnavailable``."""
        waiting, self._waiting = self._waiting, []
        _fail(waiting, RuntimeError("the store is closing"))
        for task in self._sending:
            task.cancel()

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        task = loop.create_task(self._send())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def _take(self) -> list[_Item]:
        """The next batch: up to ``BATCH_LIMIT`` waiting commands whose callers still wait."""
        waiting = self._waiting
        batch = [item for item in waiting[:BATCH_LIMIT] if not item[1].done()]
        del waiting[:BATCH_LIMIT]
        if waiting:  # more than one batch's worth: the rest leave at once too, on another connection
            self._start(asyncio.get_running_loop())
        return batch

    async def _send(self) -> None:
        batch = self._take()
        packed: list[bytes] = []
        items: list[_Item] = []
        for item in batch:
            try:
                packed.append(_pack(item[0]))
            except Exception as exc:  # noqa: BLE001 (a word hiredis cannot send: that call's error, never a hang)
                _fail([item], exc)
            else:
                items.append(item)
        if not items:
            return
        pool = self._pool
        connection = None
        answered = 0
        try:
            async with asyncio.timeout(_records.REPLY_TIMEOUT):
                connection = await pool.get_connection()  # type: ignore[no-untyped-call]  # redis-py: untyped
                await connection.send_packed_command(packed, check_health=False)
                for _, future in items:
                    try:
                        reply: object = await connection.read_response()
                    except ResponseError as error:  # this command's own error: the others go on
                        if not future.done():
                            future.set_exception(error)
                    else:
                        if not future.done():
                            future.set_result(reply)
                    answered += 1
        except BaseException as exc:
            # Connection lost, replies late, or the store closing: no reply of this batch is read any
            # more, so its connection is closed (a late reply must never be read as a later answer).
            _fail(items[answered:], exc)
            if connection is not None:
                await connection.disconnect(nowait=True)
            if not isinstance(exc, Exception):
                raise
        finally:
            if connection is not None:
                await pool.release(connection)


def _fail(items: list[_Item], cause: BaseException) -> None:
    """Each call of ``items`` still waiting gets a ``StoreUnavailable`` of its own, caused by ``cause``."""
    for _, future in items:
        if not future.done():
            failed = StoreUnavailable()
            failed.__cause__ = cause
            future.set_exception(failed)


__all__ = ["BATCH_LIMIT", "Batches"]
