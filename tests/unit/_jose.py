"""Hand-made JWTs for hostile-token tests: any header, any payload, any signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import get_default_algorithms

from keyturn._sign import low_s
from keyturn.keys import AccessKey, RefreshKey
from keyturn.sessions import TokenPair
from keyturn.testing import TestService, make_service


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: Mapping[str, Any] | str) -> str:
    """One base64url segment; a ``str`` is taken as raw JSON text (for numbers like ``1e400``)."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return b64url(text.encode())


def craft(header: Mapping[str, Any], payload: Mapping[str, Any] | str, signature: bytes = b"") -> str:
    """A compact JWT from the given parts, the signature taken as given (empty by default)."""
    return f"{segment(header)}.{segment(payload)}.{b64url(signature)}"


def raw_claim(claims: Mapping[str, Any], name: str, literal: str) -> str:
    """``claims`` as JSON text with ``name`` set to a raw JSON literal such as ``1e400`` (infinity)."""
    text = json.dumps({**claims, name: "@"}, separators=(",", ":"))
    return text.replace(f'"{name}":"@"', f'"{name}":{literal}')


def hs256(header: Mapping[str, Any], payload: Mapping[str, Any] | str, secret: bytes) -> str:
    """HMAC-SHA256 computed by hand (PyJWT refuses to use a PEM public key as an HMAC secret)."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def sign_access(key: AccessKey, header: Mapping[str, Any], payload: Mapping[str, Any] | str) -> str:
    """A token correctly signed with ``key``'s algorithm, with whatever header we please."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    signature = get_default_algorithms()[key.alg].sign(signing_input.encode("ascii"), key.private_key)
    if key.alg == "ES256":
        signature = low_s(signature)  # the only ES256 form Keyturn accepts
    return f"{signing_input}.{b64url(signature)}"


# Strings that are not JWTs at all.
GARBAGE: dict[str, str] = {
    "empty": "",
    "one-dot": ".",
    "three-dots": "...",
    "two-dots-only": "..",
    "no-dots": "eyJhbGciOiJFUzI1NiJ9",
    "two-segments": "eyJhbGciOiJFUzI1NiJ9.e30",
    "four-segments": "a.b.c.d",
    "not-base64": "@@@.###.$$$",
    "non-ascii": "\u00fc\u00f1\u00ee.\u00e7\u00f8d\u00e9.\u00df",
    "random": b64url(hashlib.sha512(b"keyturn").digest() * 8),
    "random-three-parts": ".".join(b64url(hashlib.sha256(bytes([i])).digest()) for i in range(3)),
    "header-not-json": f"{b64url(b'{not json')}.e30.",
    "header-a-list": f"{b64url(b'[]')}.e30.",
    "header-a-string": b64url(b'"at+jwt"') + ".e30.",
    "header-deeply-nested": f"{b64url(b'[' * 2000 + b']' * 2000)}.e30.",
}


DROP: Any = object()
"""Pass as a header or claim value to leave that member out."""


def _merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**base, **changes}
    return {k: v for k, v in merged.items() if v is not DROP}


@dataclass
class Scene:
    """A live session and the parts to forge tokens around it.

    ``access`` and ``refresh`` are the claims of the session's real tokens; ``other`` is a second service
    with its own keys (same algorithms, different key material).
    """

    ts: TestService
    other: TestService
    pair: TokenPair
    access: dict[str, Any]
    refresh: dict[str, Any]

    @property
    def now(self) -> float:
        return self.ts.clock.now()

    @property
    def access_key(self) -> AccessKey:
        return self.ts.service.keys.active_access

    @property
    def refresh_key(self) -> RefreshKey:
        return self.ts.service.keys.active_refresh

    def access_header(self, **changes: Any) -> dict[str, Any]:
        key = self.access_key
        return _merge({"alg": key.alg, "typ": "at+jwt", "kid": key.kid}, changes)

    def refresh_header(self, **changes: Any) -> dict[str, Any]:
        return _merge({"alg": "HS256", "typ": "rt+jwt", "kid": self.refresh_key.kid}, changes)

    def access_token(self, header: Mapping[str, Any] | None = None, **claims: Any) -> str:
        """Correctly signed with the service's access key, with the given header and claim changes."""
        return sign_access(self.access_key, header or self.access_header(), _merge(self.access, claims))

    def refresh_token(self, header: Mapping[str, Any] | None = None, **claims: Any) -> str:
        """Correctly signed with the service's refresh key, with the given header and claim changes."""
        return hs256(header or self.refresh_header(), _merge(self.refresh, claims), self.refresh_key.secret)

    def public_pem(self) -> bytes:
        return self.access_key.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


async def make_scene(ts: TestService) -> Scene:
    other = await make_service(clock=ts.clock, algorithm=ts.settings.access_token_algorithm)
    pair = await ts.service.start("alice")
    unverified = {"verify_signature": False}
    return Scene(
        ts=ts,
        other=other,
        pair=pair,
        access=jwt.decode(pair.access_token, options=unverified),
        refresh=jwt.decode(pair.refresh_token, options=unverified),
    )
