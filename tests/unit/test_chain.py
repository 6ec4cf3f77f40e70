"""A session's refresh chain read from its stored text only as far as a refresh needs (``store._chain``),
keeping exactly what parsing, sorting and filtering every generation kept (the rule as first written)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from keyturn.store._chain import RECENT_LIMIT, Chain, Rotated, rotated_from
from keyturn.typing import RefreshRecord, Rotate

NOW = 1_800_000_000.0


def _head(gen: int) -> RefreshRecord:
    return RefreshRecord(f"j{gen}", "s1", gen, "rk", int(NOW), int(NOW) + 100)


def _rotate(chain: Chain, now: float, grace: float = 30.0) -> Chain:
    return chain.rotate(Rotate(_head(chain.head.gen + 1), now, forget_before=now - grace))


def test_rotations_keep_the_recent_generations_newest_first_and_at_most_the_limit() -> None:
    """Each rotation adds the old head first; a chain never holds more than ``RECENT_LIMIT``."""
    chain = Chain(_head(0))
    for gen in range(1, 41):
        chain = _rotate(chain, NOW + gen * 0.1)
    assert [old.gen for old in chain.rotated] == list(range(39, 39 - RECENT_LIMIT, -1))
    assert chain.rotated[0] == Rotated(39, "j39", NOW + 4.0)
    assert chain.recent.count(",") == RECENT_LIMIT - 1


def test_a_rotation_forgets_what_the_grace_period_no_longer_reaches() -> None:
    """Entries rotated before ``forget_before`` go; the text keeps the others as they were written."""
    chain = Chain(_head(0))
    for at in (NOW, NOW + 10, NOW + 35):
        chain = _rotate(chain, at)
    assert [old.gen for old in chain.rotated] == [2, 1]  # gen 0, rotated at NOW, is before NOW + 35 - 30
    assert chain.presented("j0") is None
    assert chain.presented("j1") == RefreshRecord("j1", "s1", 1, "", 0, 0, NOW + 10)
    assert chain.presented("j3") == _head(3)


def test_a_migrations_entries_in_any_order_are_read_and_rotated_newest_first() -> None:
    """An upgrade writes the rotated generations in the database's order: they are sorted when read, and a
    rotation keeps the newest."""
    entries = [(gen, f"j{gen}", NOW + gen) for gen in (3, 1, 4, 2, 0)]
    text = ",".join(f"{gen} {jti} {at!r}" for gen, jti, at in entries)
    chain = Chain(_head(5), text)
    assert [old.gen for old in chain.rotated] == [4, 3, 2, 1, 0]
    assert chain.presented("j2") == RefreshRecord("j2", "s1", 2, "", 0, 0, NOW + 2)
    after = chain.rotate(Rotate(_head(6), NOW + 33, forget_before=NOW + 1.5))
    assert [old.gen for old in after.rotated] == [5, 4, 3, 2]
    assert after.recent.startswith(f"5 j5 {NOW + 33!r},4 j4 ")


def test_an_id_that_is_part_of_another_is_not_that_one() -> None:
    """The quick look for a token id in the text is only a shortcut: a part of an id matches nothing."""
    chain = _rotate(Chain(RefreshRecord("abcdef", "s1", 0, "rk", 0, 0)), NOW)
    assert chain.presented("abcdef") is not None
    assert chain.presented("bcd") is None
    assert chain.presented("") is None


HEAD = RefreshRecord(jti="head-jti", sid="sid-1", gen=40, kid="k1", issued_at=1, expires_at=2)
NEW_HEAD = RefreshRecord(jti="new-jti", sid="sid-1", gen=41, kid="k1", issued_at=3, expires_at=4)


def reference_rotate(text: str, decision: Rotate) -> tuple[Rotated, ...]:
    """The rotation as ``Chain.rotate`` was first written: every generation parsed, then filtered."""
    kept = [Rotated(HEAD.gen, HEAD.jti, decision.now)]
    kept += (old for old in rotated_from(text) if old.at >= decision.forget_before)
    return tuple(kept[:RECENT_LIMIT])


entries = st.lists(
    st.tuples(st.integers(0, 39), st.floats(NOW - 100, NOW, allow_nan=False)),
    max_size=RECENT_LIMIT + 2,
    unique_by=lambda entry: entry[0],
)


@given(entries, st.floats(NOW - 120, NOW + 1, allow_nan=False), st.booleans())
def test_rotation_keeps_what_parsing_every_generation_keeps(
    generations: list[tuple[int, float]], forget_before: float, newest_first: bool
) -> None:
    """Newest first as a rotation writes it, or in any order as the upgrade wrote it, the same are kept."""
    if newest_first:
        generations = sorted(generations, reverse=True)
    text = ",".join(f"{gen} jti-{gen} {at!r}" for gen, at in generations)
    decision = Rotate(new_head=NEW_HEAD, now=NOW, forget_before=forget_before)
    after = Chain(HEAD, text).rotate(decision)
    assert after.head == NEW_HEAD
    assert after.rotated == reference_rotate(text, decision)
    assert rotated_from(after.recent) == after.rotated
