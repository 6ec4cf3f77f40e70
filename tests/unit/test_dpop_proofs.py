"""The DPoP proof checker (RFC 9449 section 4.3), without I/O; its attack cases are in tests/security."""

from __future__ import annotations

import contextlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from keyturn.client.dpop import DpopKey
from keyturn.clock import FrozenClock
from keyturn.dpop import (
    MAX_PROOF_BYTES,
    Nonces,
    ProofRules,
    access_token_hash,
    check_proof,
    normalize_htu,
    thumbprint,
)
from keyturn.dpop_gate import DpopGate
from keyturn.errors import InvalidDpopProof, UseDpopNonce
from keyturn.middleware import AccessTokenVerifier
from keyturn.store.memory import MemoryStore
from keyturn.testing import make_settings

from .._dpop import URL, b64, b64json, ec_jwk, make_proof

NOW = 1_800_000_000.0
RULES = ProofRules(max_age=60, leeway=5)


def check(proof: str, **kwargs: object) -> object:
    options: dict[str, object] = {"method": "POST", "url": URL, "now": NOW, "rules": RULES, **kwargs}
    return check_proof(proof, **options)  # type: ignore[arg-type]


def test_the_clients_proof_checks_out_with_its_thumbprint() -> None:
    key = DpopKey.generate()
    proof = check(key.proof("POST", URL + "?x=1#f", now=NOW))
    assert proof.jkt == key.thumbprint  # type: ignore[attr-defined]


def test_the_thumbprint_is_rfc_7638s() -> None:
    """RFC 7638 section 3.1's example key is RSA; this is the same construction on RFC 7517's EC example."""
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
        "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
        "use": "enc",
        "kid": "1",
    }
    import base64
    import hashlib

    canonical = (
        b'{"crv":"P-256","kty":"EC","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",'
        b'"y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}'
    )
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    assert thumbprint(jwk) == expected


def test_an_eddsa_proof_checks_out() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    assert check(make_proof(key, now=NOW))


def test_a_high_s_ecdsa_signature_is_accepted() -> None:
    """WebCrypto does not normalise ``s``: a browser's proof is either spelling, and both must pass."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    proof = make_proof(now=NOW)
    head, body, sig = proof.split(".")
    import base64

    raw = base64.urlsafe_b64decode(sig + "==")
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    flipped = r.to_bytes(32, "big") + (n - s).to_bytes(32, "big")
    other = f"{head}.{body}.{base64.urlsafe_b64encode(flipped).rstrip(b'=').decode()}"
    assert decode_dss_signature(encode_dss_signature(r, n - s))  # a valid DER spelling
    assert check(other)


@pytest.mark.parametrize(
    ("claimed", "request_url"),
    [
        ("HTTPS://API.Example.TEST/auth/refresh", URL),
        ("https://api.example.test:443/auth/refresh", URL),
        ("https://api.example.test/auth/%72efresh", URL),
        ("https://api.example.test/auth/refresh?a=1", URL + "?b=2#c"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/"),
    ],
)
def test_htu_is_compared_normalised_without_query_or_fragment(claimed: str, request_url: str) -> None:
    assert check(make_proof(now=NOW, url=claimed), url=request_url)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.test:8443/auth/refresh",
        "http://api.example.test/auth/refresh",
        "/auth/refresh",
        "",
    ],
)
def test_htu_of_another_origin_or_relative_is_refused(url: str) -> None:
    with pytest.raises(InvalidDpopProof):
        check(make_proof(now=NOW, url=url))


def test_normalize_htu_refuses_credentials_and_odd_ports() -> None:
    assert normalize_htu("https://user:pw@api.example.test/") == ""
    assert normalize_htu("https://api.example.test:99999/") == ""
    assert normalize_htu("ftp://api.example.test/") == ""


def test_iat_within_the_window_is_accepted_at_both_ends() -> None:
    assert check(make_proof(now=NOW - 60))
    assert check(make_proof(now=NOW + 5))


@pytest.mark.parametrize(("leeway", "ahead"), [(0, 5), (3, 5), (30, 30), (300, 60)])
def test_an_iat_may_be_ahead_by_leeway_at_least_5_s_at_most_60(leeway: int, ahead: float) -> None:
    """RFC 9449 section 11.1: clients' clocks are not the service's (nor a resource server's); even with
    LEEWAY=0 a proof a few seconds ahead is accepted, and never one over a minute ahead (made for later)."""
    rules = ProofRules(max_age=60, leeway=ProofRules.ahead(leeway))
    assert check(make_proof(now=NOW + ahead), rules=rules)
    with pytest.raises(InvalidDpopProof, match="in the future"):
        check(make_proof(now=NOW + ahead + 1), rules=rules)


def test_the_service_and_resource_servers_allow_the_same_iat_ahead() -> None:
    """One rule at both: a proof the service accepts is not refused at a resource server for its iat."""
    settings = make_settings(leeway=0)
    gate = DpopGate(settings, MemoryStore(), FrozenClock(NOW), key=b"k" * 32)
    verifier = AccessTokenVerifier.for_store(MemoryStore(), settings=settings)
    try:
        assert gate.rules.leeway == verifier.proofs.rules.leeway == 5
    finally:
        verifier.close()


def test_ath_is_checked_when_an_access_token_comes_along() -> None:
    token = "header.payload.signature"
    good = make_proof(now=NOW, claims={"ath": access_token_hash(token)})
    assert check(good, access_token=token)
    with pytest.raises(InvalidDpopProof, match="ath"):
        check(make_proof(now=NOW, claims={"ath": access_token_hash("another")}), access_token=token)


def test_nonces_are_asked_for_and_accepted_for_two_windows() -> None:
    nonces = Nonces(b"k" * 32, window=300)
    rules = ProofRules(nonces=nonces)
    with pytest.raises(UseDpopNonce) as asked:
        check(make_proof(now=NOW), rules=rules)
    assert asked.value.nonce == nonces.current(NOW)
    proof = make_proof(now=NOW, claims={"nonce": nonces.current(NOW)})
    assert check(proof, rules=rules)
    later = make_proof(now=NOW + 300, claims={"nonce": nonces.current(NOW)})
    assert check(later, rules=rules, now=NOW + 300)
    stale = make_proof(now=NOW + 600, claims={"nonce": nonces.current(NOW)})
    with pytest.raises(UseDpopNonce):
        check(stale, rules=rules, now=NOW + 600)
    with pytest.raises(UseDpopNonce):  # another service's nonce
        check(make_proof(now=NOW, claims={"nonce": Nonces(b"x" * 32).current(NOW)}), rules=rules)


def test_a_non_ascii_ath_or_nonce_is_refused_not_a_server_error() -> None:
    """Regression: ``hmac.compare_digest`` raised TypeError on a str with non-ASCII characters (a 500);
    Hypothesis found it. They are compared as bytes."""
    token = "header.payload.signature"
    with pytest.raises(InvalidDpopProof, match="ath"):
        check(make_proof(now=NOW, claims={"ath": "é" * 43}), access_token=token)
    rules = ProofRules(nonces=Nonces(b"k" * 32, window=300))
    with pytest.raises(UseDpopNonce):
        check(make_proof(now=NOW, claims={"nonce": "é" * 20}), rules=rules)


def test_a_proof_over_the_size_cap_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidDpopProof, match="too large"):
        check("a" * (MAX_PROOF_BYTES + 1))


def test_a_repeated_member_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    proof = make_proof(key, now=NOW)
    _head, body, sig = proof.split(".")
    doubled = b64json({"typ": "dpop+jwt"})[:-1]  # not valid JSON either way; the parser must refuse
    with pytest.raises(InvalidDpopProof):
        check(f"{doubled}.{body}.{sig}")
    import base64
    import json

    raw = '{"typ":"dpop+jwt","alg":"ES256","alg":"ES256","jwk":' + json.dumps(ec_jwk(key)) + "}"
    twice = base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidDpopProof):
        check(f"{twice}.{body}.{sig}")


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _respelled(segment: str) -> str:
    """``segment`` with a spare bit of its last character set: the same bytes to a lenient decoder."""
    assert len(segment) % 4 in (2, 3), "the segment has no spare bits: the test would prove nothing"
    return segment[:-1] + _B64URL[_B64URL.index(segment[-1]) | 1]


def _signed(key: ec.EllipticCurvePrivateKey, signing_input: str) -> str:
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _non_canonical(part: str, key: ec.EllipticCurvePrivateKey) -> str:
    """A proof by ``key``, otherwise valid, with ``part`` spelled non-canonically."""
    if part == "jwk x":
        jwk = ec_jwk(key)
        return make_proof(key, now=NOW, header={"jwk": {**jwk, "x": _respelled(jwk["x"])}})
    head, payload, signature = make_proof(key, now=NOW).split(".")
    if part == "signature":
        return f"{head}.{payload}.{_respelled(signature)}"
    payload = b64json({"jti": "jti-pa", "htm": "POST", "htu": URL, "iat": int(NOW)})  # 2 spare bits
    return _signed(key, f"{head}.{_respelled(payload)}")


@pytest.mark.parametrize("part", ["signature", "payload", "jwk x"])
def test_a_non_canonical_base64url_segment_is_refused(part: str) -> None:
    """RFC 7515 base64url, one spelling: a proof whose segment (or key member) has its last character's
    spare bits set decodes to the same bytes, and is refused as the service's tokens are."""
    key = ec.generate_private_key(ec.SECP256R1())
    check(make_proof(key, now=NOW))  # the canonical spelling checks out
    with pytest.raises(InvalidDpopProof, match="not canonical base64url") as refused:
        check(_non_canonical(part, key))
    assert refused.value.code == "invalid_dpop_proof"


# -- Hypothesis: whatever arrives in the header, the answer is a proof or InvalidDpopProof ---------------

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=600))
def test_any_header_text_is_a_proof_or_invalid_dpop_proof(text: str) -> None:
    with contextlib.suppress(InvalidDpopProof):
        check(text)


@settings(max_examples=300, deadline=None)
@given(
    header=st.dictionaries(st.sampled_from(["typ", "alg", "jwk", "crit", "kid"]), JSONISH),
    claims=st.dictionaries(st.sampled_from(["jti", "htm", "htu", "iat", "ath", "nonce"]), JSONISH),
)
def test_any_json_in_a_signed_proof_is_a_proof_or_invalid_dpop_proof(
    header: dict[str, object], claims: dict[str, object]
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    full_header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": ec_jwk(key), **header}
    try:
        proof = make_proof(key, now=NOW, header=full_header, claims=claims)
    except (TypeError, ValueError):  # made-up values json cannot write (NaN is written)
        return
    with contextlib.suppress(InvalidDpopProof, UseDpopNonce):
        check(proof, access_token="tok")
