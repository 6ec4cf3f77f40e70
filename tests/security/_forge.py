"""Hand-made JWTs for attack tests: any header and payload (as JSON text or values), any key, any signature.

Nothing here goes through a JOSE library's encoder, so a header holds exactly what the attack needs
(repeated members, ``jku``, ``crit``, nesting) and nothing a library would add or normalise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from keyturn._sign import low_s

AsymmetricKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
JSONText = str
"""JSON already written out, for shapes a dict cannot hold (repeated members, ``1e400``)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def segment(value: Mapping[str, Any] | JSONText | bytes) -> str:
    """One base64url segment: of a mapping as JSON, of JSON text as UTF-8, of bytes as they are."""
    if isinstance(value, bytes):
        return b64url(value)
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return b64url(text.encode())


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A compact token's header and claims, unverified."""
    header, payload, _ = token.split(".")
    return json.loads(unb64url(header)), json.loads(unb64url(payload))


def sign_with(key: AsymmetricKey | bytes, alg: str, signing_input: bytes) -> bytes:
    """The JWS signature of ``signing_input`` with ``key`` as ``alg`` says (RFC 7518), computed by hand."""
    if alg == "HS256":
        assert isinstance(key, bytes)
        return hmac.new(key, signing_input, hashlib.sha256).digest()
    if alg == "HS512":
        assert isinstance(key, bytes)
        return hmac.new(key, signing_input, hashlib.sha512).digest()
    if alg == "ES256":
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return low_s(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    if alg == "RS256":
        assert isinstance(key, rsa.RSAPrivateKey)
        return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    if alg == "EdDSA":
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        return key.sign(signing_input)
    raise ValueError(alg)


def forge(
    header: Mapping[str, Any] | JSONText | bytes,
    claims: Mapping[str, Any] | JSONText | bytes,
    key: AsymmetricKey | bytes | None,
    alg: str,
) -> str:
    """A compact JWS of ``header`` and ``claims`` signed with ``key`` as ``alg`` (no key: no signature)."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = b"" if key is None else sign_with(key, alg, signing_input.encode("ascii"))
    return f"{signing_input}.{b64url(signature)}"


def public_jwk(key: AsymmetricKey) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    return jwk


def public_key_encodings(key: AsymmetricKey, jwk: Mapping[str, Any]) -> dict[str, bytes]:
    """Every spelling of a public key an HMAC-confusion attacker would try as the secret."""
    public = key.public_key()
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    found = {
        "pem": public.public_bytes(serialization.Encoding.PEM, spki),
        "der": public.public_bytes(serialization.Encoding.DER, spki),
        "openssh": public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
        "jwk-json": json.dumps(dict(jwk)).encode(),
        "jwk-json-sorted": json.dumps(dict(jwk), sort_keys=True, separators=(",", ":")).encode(),
    }
    if isinstance(public, rsa.RSAPublicKey):
        found["pkcs1-pem"] = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    if isinstance(public, ed25519.Ed25519PublicKey):
        found["raw"] = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return found


def new_key(alg: str) -> AsymmetricKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(alg)


@dataclass(repr=False)
class Attacker:
    """Keys an attacker made for themselves: one per algorithm, and an HMAC secret."""

    keys: dict[str, AsymmetricKey] = field(default_factory=dict)
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def key(self, alg: str) -> AsymmetricKey:
        if alg not in self.keys:
            self.keys[alg] = new_key(alg)
        return self.keys[alg]

    def jwk(self, alg: str, kid: str) -> dict[str, Any]:
        return {**public_jwk(self.key(alg)), "kid": kid, "alg": alg, "use": "sig"}


def fresh_claims(claims: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """``claims`` of a real token, valid for ten more minutes from now, with ``changes`` applied."""
    now = int(time.time())
    fresh = {**claims, "iat": now, "exp": now + 600}
    fresh.update(changes)
    return fresh
