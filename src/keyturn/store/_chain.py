"""A session's refresh chain as every store keeps it: in the session, never one record per token.

The session keeps its head (every field of :class:`~keyturn.typing.RefreshRecord`, from which the head
token is signed again byte for byte on a replay) and the generations rotated recently enough for the
grace period to reach: each one's generation, token id and rotation time, newest first. A rotation
forgets the ones rotated before the decision's ``forget_before`` (past the grace period, they can only be
reuse, which an unknown token is too) and keeps at most :data:`RECENT_LIMIT`, so a session's size does
not grow with its refreshes.

The rotated generations are kept as text, ``"gen jti rotated_at"`` entries joined by commas (a SQL column,
a Redis hash field); token ids are URL-safe base64 and never hold a space or a comma. A :class:`Chain` keeps
that text as it was read: a rotation, the common case, only reads each entry's generation and time and
copies the entries it keeps (the session's current token needs no look at them at all); the entries are
parsed into :class:`Rotated` records only to find a rotated token (a replay or a reuse).
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
    """The head and the recently rotated generations (``text``, as :func:`rotated_text` writes them)."""

    head: RefreshRecord
    text: str = ""

    @property
    def rotated(self) -> tuple[Rotated, ...]:
        """The rotated generations, newest first."""
        return rotated_from(self.text)

    def presented(self, jti: str) -> RefreshRecord | None:
        """The record of the token ``jti`` as the session knows it, or ``None`` if it knows none."""
        if jti == self.head.jti:
            return self.head
        for old in self.rotated:
            if old.jti == jti:
                return RefreshRecord(jti, self.head.sid, old.gen, "", 0, 0, old.at)
        return None

    def rotate(self, decision: Rotate) -> Chain:
        """The chain after ``decision``: its new head, the old head rotated now, the forgettable forgotten
        (rotated before ``decision.forget_before``), at most :data:`RECENT_LIMIT` generations in all."""
        kept = _kept(self.text, decision.forget_before)
        if kept is None:  # not newest first (a migration's text, say): parsed, sorted and written anew
            rest = [old for old in rotated_from(self.text) if old.at >= decision.forget_before]
            newest = Rotated(self.head.gen, self.head.jti, decision.now)
            return Chain(decision.new_head, rotated_text((newest, *rest)[:RECENT_LIMIT]))
        newest_text = f"{self.head.gen} {self.head.jti} {decision.now!r}"
        return Chain(decision.new_head, ",".join([newest_text, *kept[: RECENT_LIMIT - 1]]))


def _kept(text: str, forget_before: float) -> list[str] | None:
    """The entries of ``text`` rotated at or after ``forget_before``, as they are, in their order; ``None``
    unless ``text`` holds at most ``RECENT_LIMIT`` entries newest first (as :func:`rotated_text` writes
    them), where :func:`rotated_from` would sort and cut."""
    if not text:
        return []
    entries = text.split(",")
    if len(entries) > RECENT_LIMIT:
        return None
    kept = []
    previous = None
    for entry in entries:
        gen_text, _, at_text = entry.split(" ")
        gen = int(gen_text)
        if previous is not None and gen > previous:
            return None
        previous = gen
        if float(at_text) >= forget_before:
            kept.append(entry)
    return kept


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
