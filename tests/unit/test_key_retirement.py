"""Which keys sign and which are retired (``keyturn keys prune``): ``signing_kids`` and ``retired_keys``.

The records are built by hand: these functions never decrypt, so the key material is arbitrary bytes.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from keyturn.keys import KeyRing, MasterKey, new_access_key, new_refresh_key, retired_keys, signing_kids
from keyturn.typing import KeyUse, StoredKey

NOW = 1_800_000_000.0
ACCESS_HORIZON = 1_000.0
REFRESH_HORIZON = 50_000.0
_ids = itertools.count()


def key(use: KeyUse, at: float, alg: str | None = None, *, active: bool = True) -> StoredKey:
    alg = alg or ("ES256" if use == "access" else "HS256")
    return StoredKey(
        kid=f"{use}-{alg}-{next(_ids)}",
        use=use,
        alg=alg,
        material=b"never decrypted here",
        public_jwk=None,
        created_at=at,
        active=active,
    )


def retired(keys: list[StoredKey], now: float) -> set[str]:
    found = retired_keys(
        keys,
        now=now,
        access_horizon=ACCESS_HORIZON,
        refresh_horizon=REFRESH_HORIZON,
    )
    return {k.kid for k in found}


# -- signing_kids --------------------------------------------------------------------------------------


def test_signing_kids_are_the_newest_active_key_of_each_use_in_any_order() -> None:
    """Every process must agree on the signing keys, whatever order the store lists them in."""
    a_old, a_new, a_inactive = (
        key("access", NOW),
        key("access", NOW + 10),
        key("access", NOW + 20, active=False),
    )
    r_old, r_new = key("refresh", NOW), key("refresh", NOW + 10)
    keys = [a_old, a_new, a_inactive, r_old, r_new]

    for order in (keys, list(reversed(keys)), [r_new, a_inactive, a_old, r_old, a_new]):
        assert signing_kids(order) == (a_new.kid, r_new.kid)
        assert signing_kids(order, "ES256") == (a_new.kid, r_new.kid)


def test_signing_kids_pins_the_access_algorithm_but_not_the_refresh_one() -> None:
    """With an algorithm configured, a newer key of another algorithm does not sign access tokens."""
    es256, eddsa = key("access", NOW, "ES256"), key("access", NOW + 10, "EdDSA")
    refresh = key("refresh", NOW + 5)

    assert signing_kids([es256, eddsa, refresh]) == (eddsa.kid, refresh.kid)
    assert signing_kids([es256, eddsa, refresh], "ES256") == (es256.kid, refresh.kid)
    assert signing_kids([es256, eddsa, refresh], "RS256") == ("", refresh.kid)
    assert signing_kids([]) == ("", "")


# -- retired_keys -----------------------------------------------------------------------------------


def test_signing_keys_are_never_retired_however_old() -> None:
    """The keys that sign right now are needed, even when newer keys that do not sign are ancient too."""
    access, refresh = key("access", NOW), key("refresh", NOW)
    replaced = key("access", NOW - 10)
    newer_eddsa = key("access", NOW + 10, "EdDSA")  # ES256 is configured: it does not sign
    newer_inactive = key("access", NOW + 20, active=False)
    newer_inactive_refresh = key("refresh", NOW + 10, active=False)
    keys = [replaced, access, newer_eddsa, newer_inactive, refresh, newer_inactive_refresh]
    assert signing_kids(keys, "ES256") == (access.kid, refresh.kid)

    for now in (NOW + 10 * REFRESH_HORIZON, NOW + 1e9):
        found = retired(keys, now)
        assert replaced.kid in found
        assert access.kid not in found
        assert refresh.kid not in found


def test_a_replaced_key_is_retired_only_strictly_after_the_access_horizon() -> None:
    """Until the newer key has signed for longer than the horizon, a token of the old one may still live."""
    old, new = key("access", NOW), key("access", NOW + 100)
    keys = [old, new, key("refresh", NOW)]
    replaced_at = new.created_at

    assert retired(keys, replaced_at) == set()
    assert retired(keys, replaced_at + ACCESS_HORIZON - 0.5) == set()
    assert retired(keys, replaced_at + ACCESS_HORIZON) == set()
    assert retired(keys, replaced_at + ACCESS_HORIZON + 0.5) == {old.kid}
    # Measured from the replacement, not from the old key's own age.
    assert retired(keys, old.created_at + ACCESS_HORIZON + 0.5) == set()


def test_a_replaced_refresh_key_is_retired_only_strictly_after_the_refresh_horizon() -> None:
    """Refresh tokens live far longer than access tokens: their keys go on their own, later horizon."""
    old, new = key("refresh", NOW), key("refresh", NOW + 100)
    keys = [key("access", NOW), old, new]
    replaced_at = new.created_at

    assert retired(keys, replaced_at + ACCESS_HORIZON + 0.5) == set()
    assert retired(keys, replaced_at + REFRESH_HORIZON - 0.5) == set()
    assert retired(keys, replaced_at + REFRESH_HORIZON) == set()
    assert retired(keys, replaced_at + REFRESH_HORIZON + 0.5) == {old.kid}


def test_access_and_refresh_horizons_are_independent() -> None:
    """Each use is judged by its own horizon and by the newer keys of its own use only."""
    a_old, a_new = key("access", NOW), key("access", NOW + 100)
    r_old, r_new = key("refresh", NOW), key("refresh", NOW + 100)
    keys = [a_old, a_new, r_old, r_new]

    assert retired(keys, NOW + 100 + ACCESS_HORIZON + 1) == {a_old.kid}
    assert retired(keys, NOW + 100 + REFRESH_HORIZON + 1) == {a_old.kid, r_old.kid}

    # Swapping the horizons swaps the answers: the refresh key goes first, the access key stays.
    swapped = retired_keys(
        keys,
        now=NOW + 100 + ACCESS_HORIZON + 1,
        access_horizon=REFRESH_HORIZON,
        refresh_horizon=ACCESS_HORIZON,
    )
    assert {k.kid for k in swapped} == {r_old.kid}


def test_a_newer_key_of_the_other_use_does_not_retire_a_key() -> None:
    """A refresh rotation says nothing about the access keys, and the reverse."""
    a_old, a_new = key("access", NOW), key("access", NOW + 100)
    r_only = key("refresh", NOW - 5_000)  # older than both access keys, and the only refresh key
    keys = [a_old, a_new, r_only]

    assert retired(keys, NOW + 1e9) == {a_old.kid}


def test_a_key_with_no_newer_key_of_its_use_is_never_retired() -> None:
    """A key nothing has replaced may be the last one a live token names: it stays, signing or not."""
    es256 = key("access", NOW, "ES256")
    eddsa = key("access", NOW + 100, "EdDSA")  # newest access key, but ES256 is configured: it does not sign
    refresh = key("refresh", NOW)
    keys = [es256, eddsa, refresh]

    assert signing_kids(keys, "ES256")[0] == es256.kid
    assert retired(keys, NOW + 1e9) == set()
    newest_inactive = key("access", NOW + 200, active=False)
    assert newest_inactive.kid not in retired([*keys, newest_inactive], NOW + 1e9)


def test_a_key_of_another_algorithm_stays_it_may_sign_again() -> None:
    """After KEYTURN_ACCESS_TOKEN_ALGORITHM changes, the old algorithm's key is kept: switching back makes
    it the signer again (it is the newest of its algorithm), so no age of the new key can retire it."""
    eddsa = key("access", NOW, "EdDSA")  # signed while EdDSA was configured
    es256 = key("access", NOW + 100, "ES256")  # made when the service restarted on ES256
    refresh = key("refresh", NOW)
    keys = [eddsa, es256, refresh]

    assert signing_kids(keys, "ES256") == (es256.kid, refresh.kid)
    assert signing_kids(keys, "EdDSA") == (eddsa.kid, refresh.kid)
    assert retired(keys, NOW + 1e9) == set()


def test_switching_forth_back_and_forth_again_never_retires_the_signer() -> None:
    """ES256, then EdDSA, back to ES256 (its old key signs again, for months), then EdDSA again: the EdDSA
    key reused then is months old, yet the ES256 key signed until a moment ago and must stay."""
    es256 = key("access", NOW, "ES256")
    eddsa = key("access", NOW + 100, "EdDSA")
    keys = [es256, eddsa, key("refresh", NOW)]

    assert retired(keys, NOW + 1_000 * ACCESS_HORIZON) == set()


def test_several_generations_retire_from_their_own_replacement() -> None:
    """Each old key stopped signing when the next key of its algorithm arrived: its clock starts then."""
    first, second, third = key("access", NOW), key("access", NOW + 2_000), key("access", NOW + 5_000)
    keys = [third, first, key("refresh", NOW), second]

    assert retired(keys, second.created_at + ACCESS_HORIZON - 1) == set()
    assert retired(keys, second.created_at + ACCESS_HORIZON + 1) == {first.kid}
    assert retired(keys, third.created_at + ACCESS_HORIZON - 1) == {first.kid}
    assert retired(keys, third.created_at + ACCESS_HORIZON + 1) == {first.kid, second.kid}


def test_an_inactive_newer_key_replaces_nothing() -> None:
    """Only a key that can sign replaces one; an inactive newer key leaves the older one signing."""
    old = key("access", NOW)
    keys = [old, key("access", NOW + 100, active=False), key("refresh", NOW)]

    assert retired(keys, NOW + 1e9) == set()


def test_a_key_that_signed_again_after_a_rollback_waits_for_its_own_replacement() -> None:
    """An operator tries EdDSA, rolls back to ES256 (the old ES256 key signs again), later rotates.

    The ES256 key signed tokens until the rotation a moment ago; prune must keep it until those tokens
    have expired (``keyturn keys prune --help``: "keys replaced longer ago than any token they signed can
    live"). The EdDSA key made during the short-lived switch is newer, but it never replaced the ES256
    key in the service that signs today.
    """
    es256_old = key("access", NOW, "ES256")
    eddsa_tried = key("access", NOW + 100, "EdDSA")  # EdDSA configured at NOW + 100, rolled back soon after
    refresh = key("refresh", NOW)
    keys = [es256_old, eddsa_tried, refresh]
    assert signing_kids(keys, "ES256")[0] == es256_old.kid  # after the rollback the old key signs again

    rotated_at = NOW + 100 * ACCESS_HORIZON  # months later: keyturn keys rotate
    es256_new = key("access", rotated_at, "ES256")
    keys.append(es256_new)
    assert signing_kids(keys, "ES256")[0] == es256_new.kid

    assert es256_old.kid not in retired(keys, rotated_at + 1)
    assert es256_old.kid in retired(keys, rotated_at + ACCESS_HORIZON + 1)


# -- KeyRing.from_stored agrees -----------------------------------------------------------------------

SECRET = "a master secret long enough"


def real_access(alg: str, at: float, *, active: bool = True) -> StoredKey:
    stored = new_access_key(alg, MasterKey(SECRET), at)  # type: ignore[arg-type]
    return dataclasses.replace(stored, active=active)


def real_refresh(at: float, *, active: bool = True) -> StoredKey:
    return dataclasses.replace(new_refresh_key(MasterKey(SECRET), at), active=active)


@pytest.mark.parametrize("access_alg", [None, "ES256", "EdDSA"])
def test_key_ring_signs_with_the_keys_signing_kids_names(access_alg: str | None) -> None:
    """The key ring and ``keyturn keys prune`` must agree on which keys sign, or prune could delete one."""
    stored = [
        real_access("ES256", NOW + 30),
        real_access("EdDSA", NOW + 10),
        real_access("ES256", NOW),
        real_access("EdDSA", NOW + 20),
        real_access("ES256", NOW + 40, active=False),
        real_access("EdDSA", NOW + 50, active=False),
        real_refresh(NOW),
        real_refresh(NOW + 20),
        real_refresh(NOW + 40, active=False),
    ]
    expected_access = {None: stored[0], "ES256": stored[0], "EdDSA": stored[3]}[access_alg]

    for order in (stored, list(reversed(stored))):
        ring = KeyRing.from_stored(order, MasterKey(SECRET), access_alg=access_alg)
        kids = signing_kids(order, access_alg)
        assert kids == (expected_access.kid, stored[7].kid)
        assert (ring.active_access.kid, ring.active_refresh.kid) == kids
        pruned = retired_keys(order, now=NOW + 1e9, access_horizon=1, refresh_horizon=1)
        assert not {k.kid for k in pruned} & set(kids)
