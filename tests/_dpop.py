"""Proofs for the DPoP tests: the client's own (``DpopKey``) and hand-made ones an attacker would send."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

URL = "https://api.example.test/auth/refresh"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: object) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def ec_jwk(key: ec.EllipticCurvePrivateKey, *, private: bool = False) -> dict[str, str]:
    numbers = key.private_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64(numbers.public_numbers.x.to_bytes(32, "big")),
        "y": b64(numbers.public_numbers.y.to_bytes(32, "big")),
    }
    if private:
        jwk["d"] = b64(numbers.private_value.to_bytes(32, "big"))
    return jwk


def make_proof(
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | None = None,
    *,
    now: float,
    method: str = "POST",
    url: str = URL,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    sign_with: ec.EllipticCurvePrivateKey | None = None,
) -> str:
    """A proof by ``key`` (a new P-256 key by default) with ``header`` and ``claims`` changed as given."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes_raw()
        head: dict[str, Any] = {
            "typ": "dpop+jwt",
            "alg": "EdDSA",
            "jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)},
        }
    else:
        head = {"typ": "dpop+jwt", "alg": "ES256", "jwk": ec_jwk(key)}
    head.update(header or {})
    body: dict[str, Any] = {"jti": secrets.token_urlsafe(12), "htm": method, "htu": url, "iat": int(now)}
    body.update(claims or {})
    for name in drop:
        head.pop(name, None)
        body.pop(name, None)
    signing_input = f"{b64json(head)}.{b64json(body)}"
    if head.get("alg") == "none":
        return signing_input + ".x"
    signer = sign_with or key
    if isinstance(signer, ed25519.Ed25519PrivateKey):
        return f"{signing_input}.{b64(signer.sign(signing_input.encode()))}"
    r, s = decode_dss_signature(signer.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
