"""Compact JWS, read once: split, parse the header, verify the signature, parse the claims.

``jwt.decode`` parses a token twice when the header has to be read first (to find its key) and checks
claims Keyturn checks itself against an injected clock; on the validators' hot path that doubled the
cost of everything but the signature. Here each part is decoded once, the few distinct headers (one per
key) are parsed once per process, and the signature is checked by ``cryptography`` with its algorithm
objects made once: only the four algorithms Keyturn signs with exist here, each tied to its key type.

JSON with a repeated member name is refused: two readers of one token must never see different claims.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .errors import KeyturnError, TokenInvalid

__all__ = ["ALGORITHMS", "Compact", "Decoder", "split"]

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
P256_HALF_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551 // 2
"""An ES256 signature's ``s`` above this is refused: ``(r, n - s)`` verifies too, a second spelling."""
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def _es256(key: Any, message: bytes, signature: bytes) -> bool:
    if (
        not isinstance(key, ec.EllipticCurvePublicKey)
        or key.curve.name != "secp256r1"
        or len(signature) != 64
    ):
        return False
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if s > P256_HALF_ORDER:
        return False
    key.verify(encode_dss_signature(r, s), message, _ECDSA_SHA256)
    return True


def _eddsa(key: Any, message: bytes, signature: bytes) -> bool:
    if not isinstance(key, ed25519.Ed25519PublicKey):
        return False
    key.verify(signature, message)
    return True


def _rs256(key: Any, message: bytes, signature: bytes) -> bool:
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    key.verify(signature, message, _PKCS1, _SHA256)
    return True


def _hs256(key: Any, message: bytes, signature: bytes) -> bool:
    if not isinstance(key, bytes):
        return False
    return hmac.compare_digest(hmac.new(key, message, hashlib.sha256).digest(), signature)


ALGORITHMS: dict[str, Callable[[Any, bytes, bytes], bool]] = {
    "ES256": _es256,
    "EdDSA": _eddsa,
    "RS256": _rs256,
    "HS256": _hs256,
}
"""Signature checks by ``alg``: true if the signature verifies with a key of the algorithm's type."""

_HEADERS: dict[str, dict[str, Any]] = {}
_MAX_HEADERS = 256


# The last character of a segment whose length is 2 (or 3) more than a multiple of 4 carries 4 (or 2)
# spare bits; a canonical encoder leaves them zero, and any other value spells the same bytes anew.
_CANONICAL_LAST = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}
_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


class Decoder:
    """Canonical base64url without padding (RFC 7515) and JSON objects without a repeated member name,
    each refusal raised as ``error`` with a detail about ``subject``: the one reader of the compact JWS
    of tokens (``token_invalid``) and of DPoP proofs (``invalid_dpop_proof``)."""

    __slots__ = ("_error", "_json", "_subject")

    def __init__(self, error: Callable[[str], KeyturnError], subject: str) -> None:
        self._error = error
        self._subject = subject
        self._json = json.JSONDecoder(object_pairs_hook=self._unique_members)

    def segment(self, segment: str) -> bytes:
        """The bytes of ``segment``, which the caller has checked holds the base64url alphabet alone."""
        last = _CANONICAL_LAST.get(len(segment) % 4)
        if last is not None and segment[-1] not in last:
            raise self._error(f"{self._subject} is not canonical base64url.")
        try:
            standard = segment.replace("-", "+").replace("_", "/")  # str.translate is many times slower
            return binascii.a2b_base64(standard + "=" * (-len(segment) % 4))
        except (binascii.Error, ValueError) as exc:
            raise self._error(f"{self._subject} is malformed.") from exc

    def value(self, value: str) -> bytes:
        """:meth:`segment` for a string nobody has checked yet (a JWK member, say)."""
        if _ALPHABET.fullmatch(value) is None:
            raise self._error(f"{self._subject} is not canonical base64url.")
        return self.segment(value)

    def object(self, data: bytes) -> dict[str, Any]:
        """``data`` as a JSON object whose member names are each given once."""
        try:
            value = self._json.decode(data.decode())
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise self._error(f"{self._subject} is malformed.") from exc
        if not isinstance(value, dict):
            raise self._error(f"{self._subject} is malformed.")
        return value

    def _unique_members(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            raise self._error(f"{self._subject} repeats a JSON member name.")
        return obj


_TOKEN = Decoder(TokenInvalid, "The token")
_b64 = _TOKEN.segment
_object = _TOKEN.object


@dataclass(frozen=True, slots=True)
class Compact:
    """A compact JWS whose header has been parsed and whose signature is not yet checked."""

    header: dict[str, Any]
    signing_input: bytes
    payload: str
    signature: bytes

    def verify(self, alg: str, key: Any) -> bool:
        """Whether the signature is ``alg`` over the signing input with ``key``."""
        check = ALGORITHMS.get(alg)
        if check is None:
            return False
        try:
            return check(key, self.signing_input, self.signature)
        except (InvalidSignature, ValueError):
            return False

    def claims(self) -> dict[str, Any]:
        """The payload; read it only once :meth:`verify` said yes."""
        return _object(_b64(self.payload))


_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
"""Three base64url segments without padding (RFC 7515): one token, one spelling."""


def split(token: str) -> Compact:
    """The parts of ``token``, or ``token_invalid`` if it is not a compact JWS with a JSON header.

    Only the base64url alphabet is accepted, without padding and with the spare bits of a segment's last
    character zero: a lenient decoder would let one token be spelled many ways (``=`` appended, or its
    last character's spare bits set), each a new entry in a validator's cache.
    """
    if _COMPACT.fullmatch(token) is None:
        raise TokenInvalid("The token is malformed.")
    header, payload, signature = token.split(".")
    parsed = _HEADERS.get(header)
    if parsed is None:
        parsed = _object(_b64(header))
        if len(_HEADERS) >= _MAX_HEADERS:
            _HEADERS.clear()  # made-up headers cannot grow this without bound
        _HEADERS[header] = parsed
    return Compact(parsed, f"{header}.{payload}".encode(), payload, _b64(signature))
