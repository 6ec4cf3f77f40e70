"""The revocation feed (docs/contract.md) in one place: its shape on the wire, reading it from a store, and
a validator's copy of it.

Every revocation has a sequence number. A reader keeps a cursor (the last number it has seen) and asks for
the entries after it, a page at a time, until a page is not full:

- the token service answers ``GET /auth/revocations?since=N`` with :func:`read_feed` and :func:`feed_body`;
- a resource server reads pages from a :class:`RevocationSource` (the token service over HTTP, whose
  answer :func:`parse_feed` reads, or :func:`read_feed` on a store it shares with the service) into a
  :class:`RevocationSet`, which :class:`FeedFollower` keeps up to date and knows how far behind it is.

A store that was reset or replaced (a Redis without persistence restarted, a new SQLite file) numbers
from the start again. :func:`read_feed` notices a cursor past every number the store has given and reads
from the start instead, answering a ``last_seq`` below the cursor; the set adopts that lower cursor
(:meth:`RevocationSet.add`) and keeps what it had read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict

from .typing import Clock, Revocation, Store

__all__ = [
    "FEED_BATCH",
    "MAX_SEQ",
    "FeedBody",
    "FeedFollower",
    "FeedPage",
    "RevocationSet",
    "RevocationSource",
    "feed_body",
    "parse_feed",
    "read_feed",
]

FEED_BATCH = 1000
"""The most entries one page holds: the largest ``limit`` the service allows, and what a validator asks."""
MAX_SEQ = 2**63 - 1
"""What every store's sequence numbers fit in."""


@dataclass(frozen=True, slots=True)
class FeedPage:
    entries: Sequence[Revocation]
    last_seq: int
    """The reader's next cursor: below the one it gave after a store reset."""
    more: bool
    """The page is full: read again at once."""


class FeedEntryBody(TypedDict):
    seq: int
    kind: Literal["sid", "jti"]
    value: str
    expires_at: float


class FeedBody(TypedDict):
    """The JSON of ``GET /auth/revocations``."""

    revocations: list[FeedEntryBody]
    last_seq: int
    more: bool
    server_time: float


async def read_feed(store: Store, since: int, now: float, limit: int) -> FeedPage:
    """The revocations after sequence number ``since`` still in force at ``now``, at most ``limit``.

    When ``since`` is past every number the store has given, the store was reset or replaced and its
    numbers began again: the page starts from the beginning instead, and ``last_seq`` is below ``since``.
    Otherwise a reader would wait for the new numbers to pass its old cursor and, until then, miss every
    revocation.
    """
    entries = await store.revocations_since(since, now, limit)
    if not entries and since > 0:
        head = await store.revocation_head()
        if since > head:
            entries = await store.revocations_since(0, now, limit)
            since = head
    return FeedPage(entries, entries[-1].seq if entries else since, len(entries) == limit)


def feed_body(page: FeedPage, now: float) -> FeedBody:
    """``page`` as the token service answers it, with its own time."""
    return {
        "revocations": [
            {"seq": r.seq, "kind": r.kind, "value": r.value, "expires_at": r.expires_at} for r in page.entries
        ],
        "last_seq": page.last_seq,
        "more": page.more,
        "server_time": now,
    }


def parse_feed(body: object) -> FeedPage:
    """The page in the token service's answer (:func:`feed_body`); ``ValueError`` if it is not one."""
    if not isinstance(body, dict):
        raise ValueError("the revocation feed did not answer an object")
    try:
        entries = [
            Revocation(int(e["seq"]), e["kind"], str(e["value"]), float(e["expires_at"]))
            for e in body["revocations"]
        ]
        return FeedPage(entries, int(body["last_seq"]), bool(body["more"]))
    except (KeyError, TypeError) as exc:
        raise ValueError("the revocation feed's answer is malformed") from exc


class RevocationSource(Protocol):
    """Where a validator reads the feed: the page after ``seq``."""

    async def since(self, seq: int) -> FeedPage: ...

    async def close(self) -> None: ...


class RevocationSet:
    """Revoked session ids and token ids, each kept until no token it matches can still be valid, and the
    cursor of the feed they were read from."""

    __slots__ = ("_leeway", "jtis", "last_seq", "sids")

    def __init__(self, leeway: float) -> None:
        self._leeway = leeway
        self.sids: dict[str, float] = {}
        self.jtis: dict[str, float] = {}
        self.last_seq = 0

    def add(self, entries: Iterable[Revocation], last_seq: int) -> None:
        for entry in entries:
            found = self.sids if entry.kind == "sid" else self.jtis
            found[entry.value] = max(found.get(entry.value, entry.expires_at), entry.expires_at)
        self.last_seq = last_seq  # lower than before only after the store was reset (read_feed)

    def prune(self, now: float) -> None:
        # New dictionaries swapped in whole: request threads read these without a lock.
        cutoff = now - self._leeway
        self.sids = {k: v for k, v in self.sids.items() if v >= cutoff}
        self.jtis = {k: v for k, v in self.jtis.items() if v >= cutoff}

    def __len__(self) -> int:
        return len(self.sids) + len(self.jtis)


class FeedFollower:
    """A validator's copy of the feed: a :class:`RevocationSet` read from ``source`` to its end at each
    :meth:`poll`, and the time since that last succeeded (:meth:`lag`, on a monotonic timer).

    ``unreachable`` are the errors that mean the source is out of reach or answered garbage: such a poll
    keeps the set as it was and returns the error; any other error propagates. Without a source there is
    nothing to read and nothing to lag behind.
    """

    __slots__ = (
        "_clock",
        "_polled_at",
        "_source",
        "_started_at",
        "_timeout",
        "_unreachable",
        "failing",
        "revoked",
    )

    def __init__(
        self,
        source: RevocationSource | None,
        leeway: float,
        *,
        clock: Clock,
        timeout: float,
        unreachable: tuple[type[BaseException], ...],
    ) -> None:
        self._source = source
        self._clock = clock
        self._timeout = timeout
        self._unreachable = unreachable
        self.revoked = RevocationSet(leeway)
        self._started_at = time.monotonic()
        self._polled_at: float | None = None
        self.failing = False
        """The last poll failed."""

    @property
    def active(self) -> bool:
        return self._source is not None

    def started(self) -> None:
        """The validator (re)started: a feed never read lags from now."""
        self._started_at = time.monotonic()

    def lag(self) -> float:
        """Seconds since the feed was last read to its end (since the start if never)."""
        if self._source is None:
            return 0.0
        return time.monotonic() - (self._polled_at or self._started_at)

    async def poll(self) -> BaseException | None:
        """Read every page after the cursor, then drop what can no longer matter; the error if the source
        was out of reach (the set keeps what it had and the pages read before the error)."""
        source = self._source
        if source is None:
            return None
        revoked = self.revoked
        try:
            while True:
                page = await asyncio.wait_for(source.since(revoked.last_seq), self._timeout)
                revoked.add(page.entries, page.last_seq)
                if not page.more or not page.entries:
                    break
        except self._unreachable as exc:
            self.failing = True
            return exc
        revoked.prune(self._clock.now())
        self._polled_at = time.monotonic()
        self.failing = False
        return None

    async def close(self) -> None:
        if self._source is not None:
            await self._source.close()
