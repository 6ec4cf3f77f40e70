"""DPoP proofs (RFC 9449), checked without I/O: the ``DPoP`` header of one request against that request.

:func:`check_proof` parses a proof (its size capped first; canonical base64url and JSON without a
repeated member, read by the one decoder of ``keyturn._jws``), checks its header (``typ`` ``dpop+jwt``, an
allowed ``alg``, an embedded public ``jwk`` without private members), its signature, and its claims against
the request (``htm``, ``htu`` per RFC 9449 section 4.3, ``iat`` within a window of the injected time, a
``jti``, ``ath`` when an access token comes with it, the server's ``nonce`` when it asks for one). It answers
the key's RFC 7638 thumbprint (``jkt``) and the ``jti``, which the caller remembers in the store: whether a
``jti`` was seen before is the one part of the check that needs I/O.

:func:`check_presentation` is the rule of RFC 9449 section 7 for an access token, wherever one is presented
(the service's own routes and every resource-server adapter): a bound token only as ``DPoP`` with a proof by
its key, never as ``Bearer``; a token bound to no key only as ``Bearer``.

Nonces (RFC 9449 section 8) are derived from a server key and a time window (:class:`Nonces`), so every
process of one service makes and accepts the same ones without storing any.

Neither PyJWT nor ``cryptography`` computes a JWK thumbprint, and PyJWT's ``PyJWK`` accepts private keys
too: the few lines that make a public key from a JWK are here, refusing any private member.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import quote, unquote, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ._jws import Decoder
from .errors import InvalidDpopProof, InvalidDpopProofAtResource, UseDpopNonce

__all__ = [
    "ALGORITHMS",
    "MAX_PROOF_BYTES",
    "Nonces",
    "Proof",
    "ProofRules",
    "Scheme",
    "access_token_hash",
    "check_presentation",
    "check_proof",
    "normalize_htu",
    "thumbprint",
]

MAX_PROOF_BYTES: Final = 4096
"""A ``DPoP`` header longer than this is refused before it is parsed (an ES256 proof is about 600 bytes)."""
ALGORITHMS: Final = ("ES256", "EdDSA")
"""The proof algorithms accepted (advertised as ``dpop_signing_alg_values_supported``); never ``none`` or
an HMAC, whose key a proof could not carry in public."""
TYP: Final = "dpop+jwt"
MAX_JTI: Final = 256
PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

Scheme = Literal["bearer", "dpop"]
"""How a request presented an access token: ``Authorization: Bearer`` or ``Authorization: DPoP``."""

_SEGMENTS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_ECDSA = ec.ECDSA(hashes.SHA256())


@dataclass(frozen=True, slots=True)
class Proof:
    """A proof that checked out: its key's thumbprint, its ``jti`` and ``iat``."""

    jkt: str
    jti: str
    iat: float

    def replay_key(self) -> str:
        """What the store remembers of the proof: fixed length, whatever the ``jti`` (unique per key)."""
        return hashlib.sha256(f"{self.jkt} {self.jti}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Nonces:
    """Server nonces: an HMAC of the time window's number under a server key; the current window's and
    the one before are accepted, so a nonce lives between one and two windows."""

    key: bytes = field(repr=False)
    window: int = 300

    def current(self, now: float) -> str:
        return self._nonce(int(now // self.window))

    def accepts(self, nonce: object, now: float) -> bool:
        if not isinstance(nonce, str) or len(nonce) > 64:
            return False
        number = int(now // self.window)
        # As bytes: hmac.compare_digest refuses a str with non-ASCII characters (TypeError, a 500).
        return any(hmac.compare_digest(nonce.encode(), self._nonce(n).encode()) for n in (number, number - 1))

    def _nonce(self, number: int) -> str:
        mac = hmac.new(self.key, f"keyturn dpop nonce {number}".encode(), hashlib.sha256).digest()
        return _b64encode(mac[:18])


AHEAD: Final = 5.0
"""Seconds a proof's ``iat`` may be ahead of the checking clock, whatever ``LEEWAY`` says (RFC 9449 section
11.1: allow for clock skew). Keyturn's clients date proofs by the least clock offset they measured, never
ahead of the service; other clients use their own clocks, and resource servers' clocks are not the
service's."""


@dataclass(frozen=True, slots=True)
class ProofRules:
    """How old a proof may be (``max_age`` after its ``iat``), how far ahead (``leeway``), and the nonces
    asked for (``None``: none)."""

    max_age: float = 60.0
    leeway: float = AHEAD
    nonces: Nonces | None = None

    @staticmethod
    def ahead(leeway: float) -> float:
        """How far ahead a proof's ``iat`` may be for the setting ``LEEWAY``: that, at least 5 s, at most
        60."""
        return min(max(leeway, AHEAD), 60.0)

    def remember_until(self, proof: Proof) -> float:
        """When the store may forget the proof's ``jti``: past it, its ``iat`` is too old anyway."""
        return proof.iat + self.max_age + 1


def check_proof(
    header: str,
    *,
    method: str,
    url: str,
    now: float,
    rules: ProofRules,
    access_token: str | None = None,
) -> Proof:
    """The checked proof of the ``DPoP`` header value ``header`` for a ``method`` request to ``url``.

    Raises ``InvalidDpopProof``, or ``UseDpopNonce`` when ``rules`` ask for a nonce the proof lacks.
    """
    if len(header) > MAX_PROOF_BYTES:
        raise InvalidDpopProof("The DPoP proof is too large.")
    if _SEGMENTS.fullmatch(header) is None:
        raise InvalidDpopProof("The DPoP proof is not a compact JWS.")
    head_b64, payload_b64, signature_b64 = header.split(".")
    head = _object(head_b64)
    if not isinstance(head.get("typ"), str) or head["typ"].lower() != TYP:
        raise InvalidDpopProof("The DPoP proof's typ is not dpop+jwt.")
    alg = head.get("alg")
    if alg not in ALGORITHMS:
        raise InvalidDpopProof(f"The DPoP proof's alg must be one of {', '.join(ALGORITHMS)}.")
    if "crit" in head:
        raise InvalidDpopProof("The DPoP proof has critical header parameters.")
    jwk = head.get("jwk")
    if not isinstance(jwk, dict):
        raise InvalidDpopProof("The DPoP proof has no jwk.")
    key = public_key(jwk, alg)
    if not _verify(alg, key, f"{head_b64}.{payload_b64}".encode(), _PROOF.segment(signature_b64)):
        raise InvalidDpopProof("The DPoP proof's signature does not verify.")
    claims = _object(payload_b64)
    _check_claims(claims, method=method, url=url, now=now, rules=rules, access_token=access_token)
    return Proof(jkt=thumbprint(jwk), jti=claims["jti"], iat=float(claims["iat"]))


def _check_claims(
    claims: dict[str, Any],
    *,
    method: str,
    url: str,
    now: float,
    rules: ProofRules,
    access_token: str | None,
) -> None:
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI:
        raise InvalidDpopProof("The DPoP proof's jti is missing or too long.")
    if claims.get("htm") != method:
        raise InvalidDpopProof("The DPoP proof is for another HTTP method.")
    htu = claims.get("htu")
    if not isinstance(htu, str) or normalize_htu(htu) != normalize_htu(url):
        raise InvalidDpopProof("The DPoP proof is for another URL.")
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float) or iat != iat:
        raise InvalidDpopProof("The DPoP proof's iat is missing.")
    if iat > now + rules.leeway:
        raise InvalidDpopProof("The DPoP proof's iat is in the future.")
    if iat < now - rules.max_age:
        raise InvalidDpopProof("The DPoP proof is too old.")
    if access_token is not None:
        ath = claims.get("ath")
        expected = access_token_hash(access_token).encode()
        if not isinstance(ath, str) or not hmac.compare_digest(ath.encode(), expected):
            raise InvalidDpopProof("The DPoP proof's ath does not match the access token.")
    nonces = rules.nonces
    if nonces is not None and not nonces.accepts(claims.get("nonce"), now):
        raise UseDpopNonce(nonces.current(now))


def check_presentation(bound_to: str | None, scheme: Scheme, proof_jkt: str | None) -> None:
    """Return if an access token bound to the key ``bound_to`` (its ``cnf.jkt``; ``None``: bound to none) may
    be used as it was presented: in ``scheme``, with a checked proof (for this request, with ``ath``) by the
    key ``proof_jkt`` when the scheme is ``DPoP``. Else ``invalid_dpop_proof`` (401).

    A bound token sent as ``Bearer`` is refused (RFC 9449 section 7.2), so that a copy of it is useless
    without the key; a token bound to none is refused as ``DPoP``: a client that binds its tokens always
    sends them bound.
    """
    if bound_to is None:
        if scheme == "dpop":
            raise InvalidDpopProofAtResource("The access token is not DPoP-bound: send it as Bearer.")
    elif scheme != "dpop":
        raise InvalidDpopProofAtResource("The access token is DPoP-bound: send it as 'DPoP <token>'.")
    elif proof_jkt != bound_to:
        raise InvalidDpopProofAtResource("The DPoP proof is signed by another key than the token's.")


def access_token_hash(token: str) -> str:
    """``ath``: the base64url SHA-256 of the access token's ASCII (RFC 9449 section 4.2)."""
    return _b64encode(hashlib.sha256(token.encode("ascii", "replace")).digest())


_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = "-._~"


def normalize_htu(url: str) -> str:
    """``url`` without query and fragment, normalised as RFC 3986 sections 6.2.2 and 6.2.3 say (scheme and
    host in lower case, a default port dropped, an empty path as ``/``, percent-encodings in one form).

    A URL that does not parse normalises to ``""``, which matches no request's."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None or parts.password is not None:
        return ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = quote(unquote(parts.path), safe="/!$&'()*+,;=:@" + _UNRESERVED) or "/"
    return f"{scheme}://{netloc}{path}"


def thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 thumbprint (SHA-256, base64url) of a public JWK already checked by :func:`public_key`."""
    members = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("crv", "kty", "x")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64encode(hashlib.sha256(canonical.encode()).digest())


def public_key(jwk: dict[str, Any], alg: str) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey:
    """The public key of ``jwk`` for ``alg``: P-256 for ES256, Ed25519 for EdDSA; never a private key."""
    if PRIVATE_MEMBERS.intersection(jwk):
        raise InvalidDpopProof("The DPoP proof's jwk holds a private key.")
    kty, crv, x = jwk.get("kty"), jwk.get("crv"), jwk.get("x")
    if not isinstance(x, str):
        raise InvalidDpopProof("The DPoP proof's jwk is not a public key of its alg.")
    try:
        if alg == "ES256" and kty == "EC" and crv == "P-256" and isinstance(jwk.get("y"), str):
            xb, yb = _PROOF.value(x), _PROOF.value(jwk["y"])
            if len(xb) == len(yb) == 32:
                numbers = ec.EllipticCurvePublicNumbers(
                    int.from_bytes(xb, "big"), int.from_bytes(yb, "big"), ec.SECP256R1()
                )
                return numbers.public_key()
        if alg == "EdDSA" and kty == "OKP" and crv == "Ed25519":
            xb = _PROOF.value(x)
            if len(xb) == 32:
                return ed25519.Ed25519PublicKey.from_public_bytes(xb)
    except ValueError:  # a point not on the curve
        pass
    raise InvalidDpopProof("The DPoP proof's jwk is not a public key of its alg.")


def _verify(alg: str, key: Any, message: bytes, signature: bytes) -> bool:
    try:
        if alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != 64:
                return False
            # Both spellings of an ECDSA signature pass (WebCrypto does not normalise s); the jti, not
            # the signature's bytes, is what a replay is recognised by.
            r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            key.verify(encode_dss_signature(r, s), message, _ECDSA)
            return True
        if alg == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_PROOF = Decoder(InvalidDpopProof, "The DPoP proof")


def _object(segment: str) -> dict[str, Any]:
    return _PROOF.object(_PROOF.segment(segment))
