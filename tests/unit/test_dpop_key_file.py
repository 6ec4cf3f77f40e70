"""The Python client's DPoP key file: a key the client cannot sign an ES256 proof with (another curve, an
Ed25519 or RSA key) is refused when it is loaded, naming the file and what a DPoP key must be, instead of
being loaded and making proofs every service refuses. Found by an audit of ``DpopKey.from_file``."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from keyturn.client import DpopKey, TokenManager

OTHER_KEYS = {
    "P-384": (lambda: ec.generate_private_key(ec.SECP384R1()), "a secp384r1 EC key"),
    "P-521": (lambda: ec.generate_private_key(ec.SECP521R1()), "a secp521r1 EC key"),
    "secp256k1": (lambda: ec.generate_private_key(ec.SECP256K1()), "a secp256k1 EC key"),
    "Ed25519": (ed25519.Ed25519PrivateKey.generate, "a key of type Ed25519PrivateKey"),
    "RSA": (lambda: rsa.generate_private_key(65537, 2048), "a key of type RSAPrivateKey"),
}


def write_pem(path: Path, key: PrivateKeyTypes) -> bytes:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    return pem


@pytest.mark.parametrize("kind", OTHER_KEYS)
def test_a_key_file_of_another_kind_is_refused_at_load_saying_what_is_accepted(
    tmp_path: Path, kind: str
) -> None:
    """The error names the file, the key it holds and the one accepted (P-256, ES256); the file is left."""
    make, described = OTHER_KEYS[kind]
    path = tmp_path / "client.dpop.pem"
    pem = write_pem(path, make())

    with pytest.raises(ValueError, match="P-256") as refused:
        DpopKey.from_file(path)

    message = str(refused.value)
    assert str(path) in message
    assert described in message
    assert "ES256" in message
    assert path.read_bytes() == pem


def test_a_manager_given_such_a_key_file_is_refused_when_made(tmp_path: Path) -> None:
    """``TokenManager(dpop=path)`` fails at construction, before any call to the service."""
    path = tmp_path / "client.dpop.pem"
    write_pem(path, ec.generate_private_key(ec.SECP384R1()))

    with pytest.raises(ValueError, match="secp384r1"):
        TokenManager("http://127.0.0.1:9", dpop=path)


def test_a_p256_key_file_loads_and_a_key_object_of_another_curve_is_refused(tmp_path: Path) -> None:
    """The accepted kind still loads (the same key again); ``DpopKey(key)`` says the same as the file."""
    path = tmp_path / "client.dpop.pem"
    made = DpopKey.from_file(path)
    assert DpopKey.from_file(path).thumbprint == made.thumbprint

    with pytest.raises(ValueError, match=r"a secp521r1 EC key"):
        DpopKey(ec.generate_private_key(ec.SECP521R1()))
