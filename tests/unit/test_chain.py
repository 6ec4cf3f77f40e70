"""keyturn.store._chain: a rotation works on the stored text of the rotated generations, and must keep
exactly what parsing, sorting and filtering every generation kept (the rule as first written)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from keyturn.store._chain import RECENT_LIMIT, Chain, Rotated, rotated_from, rotated_text
from keyturn.typing import RefreshRecord, Rotate

NOW = 1_800_000_000.0
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
    assert rotated_from(after.text) == after.rotated


def test_the_upgrades_text_is_sorted_before_it_is_cut() -> None:
    """An entry out of order past the others (a migration's group_concat) is still the newest kept."""
    text = ",".join(f"{gen} jti-{gen} {NOW - 1!r}" for gen in [*range(5, 20), 39])
    after = Chain(HEAD, text).rotate(Rotate(new_head=NEW_HEAD, now=NOW, forget_before=NOW - 30))
    assert [old.gen for old in after.rotated] == [40, 39, *range(19, 5, -1)]


def test_a_rotated_token_is_found_in_the_text() -> None:
    """A replay or a reuse finds the rotated generation the stored text names."""
    text = rotated_text((Rotated(39, "old-jti", NOW - 5), Rotated(38, "older-jti", NOW - 9)))
    found = Chain(HEAD, text).presented("older-jti")
    assert found == RefreshRecord("older-jti", "sid-1", 38, "", 0, 0, NOW - 9)
    assert Chain(HEAD, text).presented("head-jti") is HEAD
    assert Chain(HEAD, text).presented("unknown") is None
