"""The writing systems of a username's letters: Unicode TR39's mixed-script rule, "highly restrictive" level.

A name whose letters come from two scripts (Cyrillic U+0430 for the Latin ``a`` of ``alice``) is how a
lookalike of another user's name is usually made; the rule refuses it, as browsers do for mixed-script
domain names. It keeps every name written in one script (``алиса``, ``αλίκη``), and the combinations a
language writes together (Japanese: Latin, Han, Hiragana, Katakana; Chinese: Latin, Han, Bopomofo;
Korean: Latin, Han, Hangul). Characters of no script of their own (digits, ``_``, ``.``, ``-``,
combining marks) go with any. Scripts are Unicode's Script_Extensions (``ー`` is Hiragana and Katakana),
from the ``regex`` module's data; letters outside the scripts UAX #31 recommends for identifiers count
as one more script, "other".

Not covered: a name written whole in another script that looks like an existing one (``cop`` spelt with
Cyrillic U+0441, U+043E, U+0440 against the Latin one), which needs TR39's confusable skeletons.
"""

from __future__ import annotations

import regex

__all__ = ["mixed_scripts"]

RECOMMENDED = (
    "Arabic", "Armenian", "Bengali", "Bopomofo", "Cyrillic", "Devanagari", "Ethiopic", "Georgian", "Greek",
    "Gujarati", "Gurmukhi", "Han", "Hangul", "Hebrew", "Hiragana", "Kannada", "Katakana", "Khmer", "Lao",
    "Latin", "Malayalam", "Myanmar", "Oriya", "Sinhala", "Tamil", "Telugu", "Thaana", "Thai", "Tibetan",
)  # fmt: skip
"""UAX #31, table 4: the scripts recommended for identifiers."""
OTHER = "other"
COMBINATIONS = (
    frozenset({"Latin", "Han", "Hiragana", "Katakana"}),
    frozenset({"Latin", "Han", "Bopomofo"}),
    frozenset({"Latin", "Han", "Hangul"}),
)
"""TR39 section 5.2, "highly restrictive": the script sets one name may mix."""

_IN_SCRIPT = {name: regex.compile(rf"\p{{scx={name}}}") for name in RECOMMENDED}
_NO_SCRIPT = regex.compile(r"[\p{scx=Common}\p{scx=Inherited}]")


def _scripts_of(char: str) -> frozenset[str]:
    return frozenset(name for name, pattern in _IN_SCRIPT.items() if pattern.match(char)) or frozenset(
        {OTHER}
    )


def mixed_scripts(name: str) -> tuple[str, ...]:
    """The scripts ``name`` mixes, sorted, when it mixes them beyond what TR39's "highly restrictive" level
    allows; ``()`` when it is written in one script (or in one of the allowed combinations)."""
    letters = [_scripts_of(char) for char in set(name) if not _NO_SCRIPT.match(char)]
    if not letters:
        return ()
    if frozenset.intersection(*letters):
        return ()
    if any(all(scripts & allowed for scripts in letters) for allowed in COMBINATIONS):
        return ()
    return tuple(sorted(frozenset.union(*letters)))
