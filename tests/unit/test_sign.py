"""``keyturn._sign``: tokens as PyJWT writes them, made without its per-call overhead."""

from __future__ import annotations

import secrets

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keyturn._sign import sign

CLAIMS = {"iss": "keyturn", "sub": "ünïcode", "iat": 1, "exp": 2, "gen": 3, "roles": ["a", "b"], "x": None}


def test_hs256_is_byte_identical_to_pyjwt() -> None:
    secret = secrets.token_bytes(32)
    ours = sign(CLAIMS, secret, alg="HS256", kid="r1", typ="rt+jwt")
    theirs = jwt.encode(CLAIMS, secret, algorithm="HS256", headers={"kid": "r1", "typ": "rt+jwt"})
    assert ours == theirs


@pytest.mark.parametrize(
    ("alg", "private"),
    [
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
        ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
        ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    ],
)
def test_asymmetric_tokens_verify_with_pyjwt_and_carry_the_header(alg: str, private: object) -> None:
    token = sign(CLAIMS, private, alg=alg, kid="a1", typ="at+jwt")
    assert jwt.get_unverified_header(token) == {"alg": alg, "kid": "a1", "typ": "at+jwt"}
    public = private.public_key()  # type: ignore[attr-defined]
    assert jwt.decode(token, public, algorithms=[alg], options={"verify_exp": False}) == CLAIMS
    # PyJWT's own token of the same claims has the same header and payload bytes
    theirs = jwt.encode(CLAIMS, private, algorithm=alg, headers={"kid": "a1", "typ": "at+jwt"})  # type: ignore[arg-type]
    assert token.rsplit(".", 1)[0] == theirs.rsplit(".", 1)[0]


def test_a_key_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(TypeError):
        sign(CLAIMS, secrets.token_bytes(32), alg="ES256", kid="a1", typ="at+jwt")
    with pytest.raises(TypeError):
        sign(CLAIMS, ec.generate_private_key(ec.SECP384R1()), alg="ES256", kid="a1", typ="at+jwt")
    with pytest.raises(KeyError):
        sign(CLAIMS, secrets.token_bytes(32), alg="none", kid="a1", typ="at+jwt")
