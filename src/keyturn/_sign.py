"""Compact JWS, written: the counterpart of ``_jws``, for the token service's hot path.

``jwt.encode`` rebuilds and re-encodes the header, looks the algorithm up and re-checks the key on every
call; on a refresh, which mints two tokens, that cost as much as the ES256 signature itself. Here each
distinct header (one per key and token type) is encoded once per process and the signature is made by
``cryptography`` directly. The bytes are PyJWT's: header members sorted, compact JSON, unpadded
base64url; an HS256 token is byte-identical to ``jwt.encode``'s. An ES256 signature's ``s`` is always
the low one of its two valid forms, the only one the decoders accept.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

__all__ = ["low_s", "sign", "with_low_s"]

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_compact = json.JSONEncoder(separators=(",", ":")).encode


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _es256(key: Any, message: bytes) -> bytes:
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise TypeError("ES256 needs a P-256 private key")
    r, s = decode_dss_signature(key.sign(message, _ECDSA_SHA256))
    return low_s(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def low_s(signature: bytes) -> bytes:
    """A raw ES256 signature ``r || s`` with ``s`` replaced by ``n - s`` if it is the high one.

    ``(r, s)`` and ``(r, n - s)`` both verify; the decoders accept only the low form, one spelling.
    """
    s = int.from_bytes(signature[32:], "big")
    if s <= _P256_ORDER // 2:
        return signature
    return signature[:32] + (_P256_ORDER - s).to_bytes(32, "big")


def with_low_s(token: str) -> str:
    """``token`` (a compact ES256 JWS made elsewhere, PyJWT's say) with its signature in the low-S form."""
    signing_input, signature = token.rsplit(".", 1)
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    return signing_input + "." + _b64(low_s(raw)).decode("ascii")


def _eddsa(key: Any, message: bytes) -> bytes:
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise TypeError("EdDSA needs an Ed25519 private key")
    return key.sign(message)


def _rs256(key: Any, message: bytes) -> bytes:
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("RS256 needs an RSA private key")
    return key.sign(message, _PKCS1, _SHA256)


def _hs256(key: Any, message: bytes) -> bytes:
    if not isinstance(key, bytes):
        raise TypeError("HS256 needs a secret of bytes")
    return hmac.new(key, message, hashlib.sha256).digest()


_SIGNERS: dict[str, Callable[[Any, bytes], bytes]] = {
    "ES256": _es256,
    "EdDSA": _eddsa,
    "RS256": _rs256,
    "HS256": _hs256,
}


@functools.lru_cache(maxsize=256)
def _header(alg: str, kid: str, typ: str) -> bytes:
    return _b64(
        json.dumps({"alg": alg, "kid": kid, "typ": typ}, separators=(",", ":"), sort_keys=True).encode()
    )


def sign(claims: Mapping[str, Any], key: Any, *, alg: str, kid: str, typ: str) -> str:
    """The compact JWS of ``claims`` (JSON values only) signed with ``key`` under ``alg``."""
    signer = _SIGNERS[alg]
    message = _header(alg, kid, typ) + b"." + _b64(_compact(claims).encode())
    return (message + b"." + _b64(signer(key, message))).decode("ascii")
