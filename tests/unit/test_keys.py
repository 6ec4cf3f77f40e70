"""Signing keys: encryption at rest, the master-secret file, the key ring and the JWKS."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import pytest

from keyturn.errors import ConfigError
from keyturn.keys import (
    SECRET_FILE_NAME,
    KeyRing,
    MasterKey,
    load_or_create_secret_file,
    new_access_key,
    new_refresh_key,
)
from keyturn.typing import AccessAlgorithm, StoredKey

SECRET = "a master secret long enough"
NOW = 1_800_000_000.0
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


# -- MasterKey ----------------------------------------------------------------------------------


def test_master_key_round_trips_and_does_not_store_plaintext() -> None:
    """Private keys are kept encrypted, and come back exactly."""
    master = MasterKey(SECRET)
    data = b"private key material"

    sealed = master.encrypt(data)

    assert data not in sealed
    assert master.decrypt(sealed) == data
    assert MasterKey(SECRET.encode()).decrypt(sealed) == data  # str and bytes secrets agree


def test_wrong_master_secret_is_a_config_error() -> None:
    """A mistyped KEYTURN_SECRET_KEY must say so at start-up, not fail later as a token error."""
    sealed = MasterKey(SECRET).encrypt(b"data")

    with pytest.raises(ConfigError, match="master secret"):
        MasterKey("another secret, also long").decrypt(sealed)


def test_short_master_secret_is_refused() -> None:
    """A guessable master secret would expose every signing key in the store."""
    with pytest.raises(ConfigError):
        MasterKey("too short")


# -- the secret file ------------------------------------------------------------------------------


def test_secret_file_is_created_owner_only_and_read_back_the_same(tmp_path: Path) -> None:
    """The embedded default keeps its master secret in a file nobody else may read."""
    data_dir = tmp_path / "data"

    created = load_or_create_secret_file(data_dir)

    path = data_dir / SECRET_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert len(created) >= 32
    assert load_or_create_secret_file(data_dir) == created
    MasterKey(created)  # long enough to be used


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o606])
def test_secret_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    """A group- or world-accessible master secret is as good as leaked: refuse to start."""
    load_or_create_secret_file(tmp_path)
    (tmp_path / SECRET_FILE_NAME).chmod(mode)

    with pytest.raises(ConfigError, match="chmod 600"):
        load_or_create_secret_file(tmp_path)


def test_empty_secret_file_is_refused(tmp_path: Path) -> None:
    """An empty secret would silently derive a key from nothing."""
    path = tmp_path / SECRET_FILE_NAME
    path.touch(mode=0o600)
    path.chmod(0o600)

    with pytest.raises(ConfigError, match="empty"):
        load_or_create_secret_file(tmp_path)


# -- KeyRing -------------------------------------------------------------------------------------


def access_key(alg: AccessAlgorithm = "ES256", *, at: float = NOW, active: bool = True) -> StoredKey:
    return dataclasses.replace(new_access_key(alg, MasterKey(SECRET), at), active=active)


def refresh_key(*, at: float = NOW, active: bool = True) -> StoredKey:
    return dataclasses.replace(new_refresh_key(MasterKey(SECRET), at), active=active)


def test_key_ring_signs_with_the_newest_active_key_of_each_use() -> None:
    """After a rotation every process must sign with the new key, while old ones still verify."""
    old, new, retired = access_key(at=NOW), access_key(at=NOW + 10), access_key(at=NOW + 20, active=False)
    r_old, r_new = refresh_key(at=NOW), refresh_key(at=NOW + 10)

    ring = KeyRing.from_stored([new, retired, old, r_new, r_old], MasterKey(SECRET))

    assert ring.active_access.kid == new.kid
    assert ring.active_refresh.kid == r_new.kid
    for key in (old, retired):
        assert ring.access_key(key.kid) is not None
    assert ring.refresh_key(r_old.kid) is not None


def test_key_ring_can_pin_the_access_algorithm() -> None:
    """Switching KEYTURN_ACCESS_TOKEN_ALGORITHM picks that algorithm's key even if another is newer."""
    eddsa, es256 = access_key("EdDSA", at=NOW), access_key("ES256", at=NOW + 10)

    ring = KeyRing.from_stored([eddsa, es256, refresh_key()], MasterKey(SECRET), access_alg="EdDSA")

    assert ring.active_access.kid == eddsa.kid
    assert ring.active_access.alg == "EdDSA"


def test_key_ring_without_an_active_key_is_a_config_error() -> None:
    """Starting with nothing to sign with must fail loudly at start-up."""
    with pytest.raises(ConfigError):
        KeyRing.from_stored([access_key(active=False), refresh_key()], MasterKey(SECRET))
    with pytest.raises(ConfigError):
        KeyRing.from_stored([access_key("ES256"), refresh_key()], MasterKey(SECRET), access_alg="RS256")


def test_key_ring_with_the_wrong_master_secret_is_a_config_error() -> None:
    """Keys made under another secret cannot be used, and the error says why."""
    with pytest.raises(ConfigError, match="master secret"):
        KeyRing.from_stored([access_key(), refresh_key()], MasterKey("not the secret they were made with"))


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_jwks_publishes_public_parts_only_with_kid_alg_and_use(alg: AccessAlgorithm) -> None:
    """The JWKS is public: a private member there would hand out the signing key."""
    stored = [access_key(alg, at=NOW), access_key(alg, at=NOW + 1), refresh_key()]
    ring = KeyRing.from_stored(stored, MasterKey(SECRET))

    jwks = json.loads(json.dumps(ring.jwks()))

    assert {k["kid"] for k in jwks["keys"]} == {stored[0].kid, stored[1].kid}
    for jwk in jwks["keys"]:
        assert (jwk["alg"], jwk["use"]) == (alg, "sig")
        assert jwk["kty"] in {"EC", "OKP", "RSA"}
        assert not PRIVATE_JWK_MEMBERS & set(jwk)


def test_refresh_keys_are_never_published() -> None:
    """The refresh HMAC key is server-only: with it anyone could mint refresh tokens."""
    stored = refresh_key()
    ring = KeyRing.from_stored([access_key(), stored], MasterKey(SECRET))

    assert stored.public_jwk is None
    assert stored.kid not in {k["kid"] for k in ring.jwks()["keys"]}
    secret = ring.active_refresh.secret
    assert len(secret) >= 32
    assert secret not in stored.material
