"""``sessions.new_id``: the ids of sessions and tokens, which people paste into a command line."""

from __future__ import annotations

import re

from keyturn.sessions import new_id


def test_ids_are_128_random_bits_in_base64url_and_never_look_like_an_option() -> None:
    """One base64url id in 64 starts with ``-``, and ``keyturn sessions revoke -Dr…`` then fails as an
    unknown option (CI met one): of 20,000 ids (about 312 would), none may, and all stay 22 characters of
    the alphabet, all distinct."""
    ids = [new_id() for _ in range(20_000)]

    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", i) for i in ids)
    assert len(set(ids)) == len(ids)
