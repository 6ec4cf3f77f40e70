"""A session's refresh chain as every store keeps it: in the session, never one record per token.

The session keeps its head (every field of :class:`~keyturn.typing.RefreshRecord`, from which the head
token is signed again byte for byte on a replay) and the generations rotated recently enough for the
grace period to reach: each one's generation, token id and rotation time, newest first. A rotation
forgets the ones rotated before the decision's ``forget_before`` (past the grace period, they can only be
reuse, which an unknown token is too) and keeps at most :data:`RECENT_LIMIT`, so a session's size does
not grow with its refreshes.

The rotated generations are kept as text, ``"gen jti rotated_at"`` entries joined by commas (a SQL column,
a Redis hash field); token ids are URL-safe base64 and never hold a space or a comma.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..typing import RefreshRecord, Rotate

RECENT_LIMIT = 16
"""Rotated generations a session remembers at most. A client rotating more often than this within one
grace period finds its oldest copies judged reused (``unknown``, since the session no longer knows them)."""


@dataclass(frozen=True, slots=True)
class Rotated:
    """A generation the session rotated: its token id and when."""

    gen: int
    jti: str
    at: float


@dataclass(frozen=True, slots=True)
class Chain:
    """The head and the recently rotated generations of one session, the latter as the store keeps them
    (``recent``: the text of the module's docstring, newest first, or a migration's, in any order).

    They are read only as far as a call needs: a refresh that presents the head (the common case) never
    parses an entry, and its rotation reads only their generations and times, keeping the text of each
    entry it keeps; ``rotated`` parses them all.
    """

    head: RefreshRecord
    recent: str = ""

    @property
    def rotated(self) -> tuple[Rotated, ...]:
        """The recently rotated generations, newest first."""
        return rotated_from(self.recent)

    def presented(self, jti: str) -> RefreshRecord | None:
        """The record of the token ``jti`` as the session knows it, or ``None`` if it knows none."""
        if jti == self.head.jti:
            return self.head
        if jti not in self.recent:  # not among the entries: no need to read them
            return None
        for old in self.rotated:
            if old.jti == jti:
                return RefreshRecord(jti, self.head.sid, old.gen, "", 0, 0, old.at)
        return None

    def rotate(self, decision: Rotate) -> Chain:
        """The chain after ``decision``: its new head, the old head rotated now, the forgettable forgotten."""
        kept = [f"{self.head.gen} {self.head.jti} {decision.now!r}"]
        kept += _entries_since(self.recent, decision.forget_before)
        return Chain(decision.new_head, ",".join(kept[:RECENT_LIMIT]))


def _entries_since(text: str, since: float) -> list[str]:
    """The entries of ``text`` rotated at ``since`` or later, as they are written, newest first, of the
    :data:`RECENT_LIMIT` newest (what :func:`rotated_from` reads)."""
    if not text:
        return []
    entries = text.split(",")
    if len(entries) > RECENT_LIMIT:  # only a migration writes more: read them all
        return _newest_since(text, since)
    kept: list[str] = []
    last = None
    for entry in entries:
        gen = int(entry[: entry.index(" ")])
        if last is not None and gen >= last:  # a migration's entries, in any order: read them all
            return _newest_since(text, since)
        last = gen
        if float(entry[entry.rindex(" ") + 1 :]) >= since:
            kept.append(entry)
    return kept


def _newest_since(text: str, since: float) -> list[str]:
    return [f"{old.gen} {old.jti} {old.at!r}" for old in rotated_from(text) if old.at >= since]


def rotated_from(text: str) -> tuple[Rotated, ...]:
    """The rotated generations of a chain's text (``Chain.rotate``'s, newest first, or a migration's, in
    any order), newest first."""
    if not text:
        return ()
    found = []
    for entry in text.split(","):
        gen, jti, at = entry.split(" ")
        found.append(Rotated(int(gen), jti, float(at)))
    found.sort(key=lambda old: old.gen, reverse=True)
    return tuple(found[:RECENT_LIMIT])
