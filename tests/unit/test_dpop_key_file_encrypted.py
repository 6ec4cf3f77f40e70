"""The Python client's DPoP key file may be a password-protected PEM: ``DpopKey.from_file(path,
password=...)`` reads it (and saves a key it makes encrypted by it); without the password, with the wrong
one, or with one for a file that is not encrypted, a ``ValueError`` names the file and what is wrong
(regression: cryptography's own ``TypeError`` escaped, naming neither)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyturn.client import DpopKey

PASSWORD = "correct horse battery staple"
FORMATS = {
    "PKCS8": serialization.PrivateFormat.PKCS8,  # -----BEGIN ENCRYPTED PRIVATE KEY-----
    "OpenSSL": serialization.PrivateFormat.TraditionalOpenSSL,  # Proc-Type: 4,ENCRYPTED
}


def write_encrypted(path: Path, fmt: serialization.PrivateFormat) -> DpopKey:
    key = ec.generate_private_key(ec.SECP256R1())
    encryption = serialization.BestAvailableEncryption(PASSWORD.encode())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, fmt, encryption))
    return DpopKey(key)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_encrypted_key_file_without_its_password_is_a_value_error_naming_the_file(
    tmp_path: Path, fmt: str
) -> None:
    """Not cryptography's ``TypeError``: the file and that it is encrypted, and how to give the password."""
    path = tmp_path / "client.dpop.pem"
    write_encrypted(path, FORMATS[fmt])

    with pytest.raises(ValueError, match="encrypted") as refused:
        DpopKey.from_file(path)

    assert str(path) in str(refused.value)
    assert "password=" in str(refused.value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_encrypted_key_file_is_read_with_its_password(tmp_path: Path, fmt: str) -> None:
    """The key read is the one written (its thumbprint), given the password as str or bytes."""
    path = tmp_path / "client.dpop.pem"
    written = write_encrypted(path, FORMATS[fmt])

    assert DpopKey.from_file(path, password=PASSWORD).thumbprint == written.thumbprint
    assert DpopKey.from_file(path, password=PASSWORD.encode()).thumbprint == written.thumbprint


def test_the_wrong_password_is_a_value_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "client.dpop.pem"
    write_encrypted(path, serialization.PrivateFormat.PKCS8)

    with pytest.raises(ValueError, match="wrong password") as refused:
        DpopKey.from_file(path, password="not it")

    assert str(path) in str(refused.value)


def test_a_password_for_a_plain_key_file_is_a_value_error_naming_the_file(tmp_path: Path) -> None:
    """A password given for a file that is not encrypted is a mistake the caller should hear of."""
    path = tmp_path / "client.dpop.pem"
    DpopKey.from_file(path)  # made, unencrypted

    with pytest.raises(ValueError, match="no encrypted private key") as refused:
        DpopKey.from_file(path, password=PASSWORD)

    assert str(path) in str(refused.value)


def test_a_key_made_with_a_password_is_saved_encrypted_by_it(tmp_path: Path) -> None:
    path = tmp_path / "client.dpop.pem"
    made = DpopKey.from_file(path, password=PASSWORD)

    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert path.stat().st_mode & 0o777 == 0o600
    assert DpopKey.from_file(path, password=PASSWORD).thumbprint == made.thumbprint
    with pytest.raises(ValueError, match="encrypted"):
        DpopKey.from_file(path)


def test_a_file_that_holds_no_key_is_a_value_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "client.dpop.pem"
    path.write_text("not a key\n")

    with pytest.raises(ValueError, match="no private key it can read") as refused:
        DpopKey.from_file(path)

    assert str(path) in str(refused.value)
