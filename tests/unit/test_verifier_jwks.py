"""Reading a JWKS: ``parse_jwks`` keeps the public keys a verifier may use and nothing else,
``StaticKeys`` takes a pinned JWKS, and ``cache_max_age`` reads the token service's ``Cache-Control``.

A resource server that fetches (or pins) the token service's JWKS must end up with exactly the usable
public signing keys: never a private half, a symmetric key or an algorithm Keyturn does not verify with.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from keyturn.keys import MasterKey, new_access_key, parse_jwks
from keyturn.middleware import AccessTokenVerifier, StaticKeys
from keyturn.middleware._sources import cache_max_age
from keyturn.testing import TestService
from keyturn.typing import AccessAlgorithm

pytestmark = pytest.mark.anyio


def public_jwk(alg: AccessAlgorithm) -> dict[str, Any]:
    """The published JWK of a real new access key."""
    key = new_access_key(alg, MasterKey("a test master secret, long enough"), 0.0)
    assert key.public_jwk is not None
    jwk: dict[str, Any] = json.loads(key.public_jwk)
    return jwk


def test_parse_jwks_keeps_the_three_signing_algorithms() -> None:
    """ES256, EdDSA and RS256 are what the token service signs with; each must come out usable."""
    jwks = [public_jwk("ES256"), public_jwk("EdDSA"), public_jwk("RS256")]

    keys = parse_jwks(jwks)

    assert {kid: key.alg for kid, key in keys.items()} == {
        jwks[0]["kid"]: "ES256",
        jwks[1]["kid"]: "EdDSA",
        jwks[2]["kid"]: "RS256",
    }
    assert all(key.kid == kid for kid, key in keys.items())
    assert isinstance(keys[jwks[0]["kid"]].public_key, ec.EllipticCurvePublicKey)
    assert isinstance(keys[jwks[1]["kid"]].public_key, ed25519.Ed25519PublicKey)
    assert isinstance(keys[jwks[2]["kid"]].public_key, rsa.RSAPublicKey)


def test_parse_jwks_infers_the_algorithm_when_a_key_does_not_name_it() -> None:
    """``alg`` is optional in a JWK; the key type and curve say which algorithm it is."""
    jwks = [
        {k: v for k, v in public_jwk(alg).items() if k not in ("alg", "use")} for alg in ("ES256", "EdDSA")
    ]

    keys = parse_jwks(jwks)

    assert sorted(key.alg for key in keys.values()) == ["ES256", "EdDSA"]


def test_parse_jwks_keeps_only_the_public_half_of_a_private_jwk() -> None:
    """A JWKS that leaks a private key must not make the verifier hold (or use) a signing key."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = {**RSAAlgorithm.to_jwk(private, as_dict=True), "kid": "leaky", "alg": "RS256"}
    assert "d" in jwk
    ed_private = ed25519.Ed25519PrivateKey.generate()
    ed_jwk: dict[str, Any] = {**OKPAlgorithm.to_jwk(ed_private, as_dict=True), "kid": "leaky-ed"}

    keys = parse_jwks([jwk, ed_jwk])

    assert isinstance(keys["leaky"].public_key, rsa.RSAPublicKey)
    assert isinstance(keys["leaky-ed"].public_key, ed25519.Ed25519PublicKey)


def test_parse_jwks_leaves_out_keys_it_must_not_or_cannot_use() -> None:
    """An encryption key, a symmetric key (HS256 with a published secret would let anyone sign), an
    algorithm Keyturn does not verify with, a broken JWK or one without a usable id: each is skipped,
    and the good key beside them is kept."""
    good = public_jwk("ES256")
    es = public_jwk("ES256")
    rs = public_jwk("RS256")
    bad: list[Any] = [
        {**es, "kid": "for-encryption", "use": "enc"},
        {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", "alg": "HS256", "kid": "hmac"},
        {**rs, "kid": "pss", "alg": "PS256"},
        {**es, "kid": "made-up-alg", "alg": "ES999"},
        {**es, "kid": "wrong-curve-for-alg", "alg": "ES512"},
        {**es, "kid": "broken", "x": "AAAA"},
        {"kty": "EC", "crv": "P-256", "kid": "no-coordinates"},
        {"kty": "nonsense", "kid": "unknown-kty"},
        {k: v for k, v in es.items() if k != "kid"},
        {**es, "kid": 7},
        {**es, "kid": None},
        "not a JWK",
        ["not", "a", "JWK"],
    ]

    keys = parse_jwks([*bad, good])

    assert list(keys) == [good["kid"]]


async def test_static_keys_take_a_jwks_document_or_its_key_list(live: TestService) -> None:
    """Services that pin their keys hand over the JWKS as published, or just its keys."""
    pair = await live.service.start("alice")
    jwks = live.service.keys.jwks()
    for keys in (StaticKeys(jwks), StaticKeys(jwks["keys"])):
        with AccessTokenVerifier(keys, None) as verifier:
            assert verifier.verify(pair.access_token).sid == pair.session_id
            assert verifier.revocation_lag() == 0.0  # no feed: nothing to lag behind


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("public, max-age=300", 300.0),
        ("max-age=60", 60.0),
        ("MAX-AGE=60, must-revalidate", 60.0),
        ('max-age="120"', 120.0),
        ("max-age=0", 0.0),
        ("no-store", 0.0),
        ("no-cache, max-age=300", 0.0),
        ("private, no-cache", 0.0),
        ("max-age=abc", None),
        ("s-maxage=300", None),
        ("public", None),
        ("", None),
        (None, None),
    ],
)
def test_cache_max_age_reads_cache_control(header: str | None, seconds: float | None) -> None:
    """How long a JWKS may be kept comes from the token service's ``Cache-Control``; anything unreadable
    means "say nothing" (the default applies), never a crash or a made-up number."""
    assert cache_max_age(header) == seconds
