"""Compact JWS, read once: split, parse the header, verify the signature, parse the claims.

``jwt.decode`` parses a token twice when the header has to be read first (to find its key) and checks
claims Keyturn checks itself against an injected clock; on the validators' hot path that doubled the
cost of everything but the signature. Here each part is decoded once and the signature is checked by
PyJWT's own algorithm objects (``cryptography`` underneath).

JSON with a repeated member name is refused: two readers of one token must never see different claims.
"""

from __future__ import annotations

import binascii
import json
from base64 import urlsafe_b64decode
from dataclasses import dataclass
from typing import Any

from jwt.algorithms import Algorithm, get_default_algorithms

from .errors import TokenInvalid

__all__ = ["Compact", "split"]

_ALGORITHMS: dict[str, Algorithm] = get_default_algorithms()


def _b64(segment: str) -> bytes:
    try:
        return urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenInvalid("The token is malformed.") from exc


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise TokenInvalid("The token repeats a JSON member name.")
    return obj


def _object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data, object_pairs_hook=_unique_members)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise TokenInvalid("The token is malformed.") from exc
    if not isinstance(value, dict):
        raise TokenInvalid("The token is malformed.")
    return value


@dataclass(frozen=True, slots=True)
class Compact:
    """A compact JWS whose header has been parsed and whose signature is not yet checked."""

    header: dict[str, Any]
    signing_input: bytes
    payload: str
    signature: bytes

    def verify(self, alg: str, key: Any) -> bool:
        """Whether the signature is ``alg`` over the signing input with ``key``."""
        algorithm = _ALGORITHMS.get(alg)
        if algorithm is None:
            return False
        try:
            return algorithm.verify(self.signing_input, key, self.signature)
        except (ValueError, TypeError, AttributeError):  # a key that does not fit the algorithm
            return False

    def claims(self) -> dict[str, Any]:
        """The payload; read it only once :meth:`verify` said yes."""
        return _object(_b64(self.payload))


def split(token: str) -> Compact:
    """The parts of ``token``, or ``token_invalid`` if it is not a compact JWS with a JSON header."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenInvalid("The token is malformed.")
    header, payload, signature = parts
    if not token.isascii():
        raise TokenInvalid("The token is malformed.")
    return Compact(_object(_b64(header)), f"{header}.{payload}".encode(), payload, _b64(signature))
