"""The mixed-script rule for new usernames (issue 18): lookalikes made of two scripts are refused, names
written in one script (or in a combination a language writes) are not."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from keyturn._scripts import mixed_scripts
from keyturn.store.memory import MemoryStore
from keyturn.users import UserDirectory

CYRILLIC_A = "\u0430"
CYRILLIC_IE = "\u0435"

REFUSED = {
    "Cyrillic a in alice": (CYRILLIC_A + "lice", ("Cyrillic", "Latin")),
    "Cyrillic e in alice": ("alic" + CYRILLIC_IE, ("Cyrillic", "Latin")),
    "Greek alpha in alpha": ("\u03b1lpha", ("Greek", "Latin")),
    "Cherokee A in alice": ("\u13aalice", ("Latin", "other")),
    "Han and Cyrillic": ("\u5c71" + CYRILLIC_A, ("Cyrillic", "Han")),
    "Hangul and Hiragana": ("\uae40\u305f", ("Hangul", "Hiragana")),
}
KEPT = {
    "Latin": "alice_01",
    "Latin with an accent": "jos\u00e9",
    "Latin with a combining accent": "jose\u0301",
    "Cyrillic": "\u0430\u043b\u0438\u0441\u0430",
    "Cyrillic with digits and a dot": "\u0430\u043b\u0438\u0441\u0430.1987",
    "Greek": "\u03b1\u03bb\u03af\u03ba\u03b7",
    "Japanese: Han and Hiragana": "\u5c71\u7530\u305f\u308d\u3046",
    "Japanese: Katakana with the long-vowel mark (Common, Hiragana or Katakana)": "\u30bf\u30ed\u30fc",
    "Japanese with Latin": "tanaka\u5c71\u7530",
    "Korean": "\uae40\ucca0\uc218",
    "Cherokee alone": "\u13e3\u13b3\u13a9",
    "no letters": "1234",
}


@pytest.mark.parametrize(("name", "mixed"), list(REFUSED.values()), ids=list(REFUSED))
def test_a_name_that_mixes_scripts_is_named_with_its_scripts(name: str, mixed: tuple[str, ...]) -> None:
    assert mixed_scripts(name) == mixed


@pytest.mark.parametrize("name", list(KEPT.values()), ids=list(KEPT))
def test_a_name_in_one_script_or_an_allowed_combination_is_not_mixed(name: str) -> None:
    assert mixed_scripts(name) == ()


@pytest.mark.anyio
async def test_a_lookalike_of_an_existing_user_cannot_be_added_and_an_all_cyrillic_name_can(
    anyio_backend: str,
) -> None:
    """The directory refuses the lookalike before anything is stored; the Cyrillic name is a user."""
    store = MemoryStore()
    users = UserDirectory(store, hasher=PasswordHasher(time_cost=1, memory_cost=8192))
    assert await users.add("alice", "correct horse")
    with pytest.raises(ValueError, match="Cyrillic and Latin"):
        await users.add(CYRILLIC_A + "lice", "correct horse")
    cyrillic = "\u0430\u043b\u0438\u0441\u0430"
    assert await users.add(cyrillic, "correct horse")
    assert sorted(u.username for u in await store.list_users()) == ["alice", cyrillic]
    assert (await users.authenticate(cyrillic, "correct horse")).username == cyrillic
