"""The server's periodic chores: reload the key ring (rotations made by other processes) and prune."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from ..errors import KeyturnError
from ..events import emit
from .runtime import Runtime

logger = logging.getLogger("keyturn.server")


async def _every(seconds: float, chore: Callable[[], Awaitable[object]], name: str) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await chore()
        except KeyturnError as exc:  # the store is down: try again next time
            logger.warning("%s failed: %s", name, exc.code)
        except Exception as exc:  # a chore that fails must not stop for good; it is logged
            logger.error("%s failed: %s", name, type(exc).__name__, exc_info=exc)


async def _prune(rt: Runtime) -> None:
    removed = await rt.sessions.prune()
    if removed:
        emit("store.pruned", removed=removed)


@asynccontextmanager
async def chores(rt: Runtime) -> AsyncIterator[None]:
    """Run the periodic chores while the server runs."""
    reload = _every(rt.settings.key_reload_interval, rt.sessions.reload_keys, "key reload")
    tasks = [asyncio.create_task(reload)]
    if rt.settings.prune_interval:
        tasks.append(asyncio.create_task(_every(rt.settings.prune_interval, lambda: _prune(rt), "prune")))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
