"""Reading the revocation feed (DESIGN section 4): the page after a reader's cursor, across a store reset.

Both readers of the feed use this: the token service's ``GET /auth/revocations`` and a resource server
that reads the shared store itself (``keyturn.middleware``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .typing import Revocation, Store

__all__ = ["FeedPage", "read_feed"]


@dataclass(frozen=True, slots=True)
class FeedPage:
    entries: list[Revocation]
    last_seq: int
    """The reader's next cursor: below the one it gave after a store reset."""
    more: bool
    """The page is full: read again at once."""


async def read_feed(store: Store, since: int, now: float, limit: int) -> FeedPage:
    """The revocations after sequence number ``since`` still in force at ``now``, at most ``limit``.

    When ``since`` is past every number the store has given, the store was reset or replaced (a Redis
    without persistence restarted, a new SQLite file) and its numbers began again: the page starts from
    the beginning instead, and ``last_seq`` is below ``since``. Otherwise a reader would wait for the new
    numbers to pass its old cursor and, until then, miss every revocation.
    """
    entries = await store.revocations_since(since, now, limit)
    if not entries and since > 0:
        head = await store.revocation_head()
        if since > head:
            entries = await store.revocations_since(0, now, limit)
            since = head
    return FeedPage(entries, entries[-1].seq if entries else since, len(entries) == limit)
