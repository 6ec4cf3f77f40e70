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
    """The head and the recently rotated generations (newest first) of one session."""

    head: RefreshRecord
    rotated: tuple[Rotated, ...] = ()

    def presented(self, jti: str) -> RefreshRecord | None:
        """The record of the token ``jti`` as the session knows it, or ``None`` if it knows none."""
        if jti == self.head.jti:
            return self.head
        for old in self.rotated:
            if old.jti == jti:
                return RefreshRecord(jti, self.head.sid, old.gen, "", 0, 0, old.at)
        return None

    def rotate(self, decision: Rotate) -> Chain:
        """The chain after ``decision``: its new head, the old head rotated now, the forgettable forgotten."""
        kept = [Rotated(self.head.gen, self.head.jti, decision.now)]
        kept += (old for old in self.rotated if old.at >= decision.forget_before)
        return Chain(decision.new_head, tuple(kept[:RECENT_LIMIT]))


def rotated_text(rotated: tuple[Rotated, ...]) -> str:
    return ",".join(f"{old.gen} {old.jti} {old.at!r}" for old in rotated)


def rotated_from(text: str) -> tuple[Rotated, ...]:
    """The rotated generations of ``rotated_text`` (or of a migration's, in any order), newest first."""
    if not text:
        return ()
    found = []
    for entry in text.split(","):
        gen, jti, at = entry.split(" ")
        found.append(Rotated(int(gen), jti, float(at)))
    found.sort(key=lambda old: old.gen, reverse=True)
    return tuple(found[:RECENT_LIMIT])
