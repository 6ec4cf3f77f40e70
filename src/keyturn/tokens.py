"""Token encoding and decoding with PyJWT, as docs/contract.md, Tokens, says.

Each token type has its algorithm pinned (never taken from the header) and its ``typ`` checked;
``iss``, ``aud`` (access), ``exp``/``nbf``/``iat`` are checked with a leeway against the injected time;
tokens over 8 KiB are refused before anything is parsed. A refresh token presented as an access token, or
the reverse, is ``token_invalid``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ._jws import Compact, split
from ._sign import sign
from .errors import TokenExpired, TokenInvalid
from .keys import KeyRing
from .typing import JSONValue, RefreshRecord, SessionRecord

__all__ = [
    "DEFAULT_CLIENT_ID",
    "MAX_TOKEN_LENGTH",
    "RESERVED_CLAIMS",
    "AccessClaims",
    "RefreshClaims",
    "TokenCodec",
    "UnknownKey",
    "VerificationKey",
    "read_access",
    "unverified_refresh_subject",
]

MAX_TOKEN_LENGTH = 8192
"""Tokens longer than this (in characters; a JWT is ASCII) are refused before parsing."""

DEFAULT_CLIENT_ID = "keyturn"
"""The public client an access token names (``client_id``, which RFC 9068 requires) when none was given."""

ACCESS_TYP = "at+jwt"
REFRESH_TYP = "rt+jwt"
REFRESH_ALG = "HS256"

RESERVED_CLAIMS = frozenset(
    {"iss", "sub", "aud", "iat", "exp", "nbf", "jti", "sid", "client_id", "gen", "typ", "cnf"}
)
"""Claims Keyturn sets itself; an application's own claims may not use these names."""

_ACCESS_REQUIRED = ["iss", "aud", "sub", "iat", "exp", "jti", "sid"]
_REFRESH_REQUIRED = ["iss", "sub", "sid", "jti", "gen", "iat", "exp"]
# Header parameters that would change how the token is read; Keyturn uses none of them.
_REFUSED_HEADERS = frozenset({"crit", "b64", "zip"})


class UnknownKey(TokenInvalid):
    """``token_invalid`` because no key of this ring has the token's ``kid``.

    Told apart so that a service can reload its keys (another process may have rotated them) and try
    once more before refusing the token.
    """

    def __init__(self, kid: str, description: str) -> None:
        super().__init__(description)
        self.kid = kid


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """A verified access token's claims."""

    sub: str
    sid: str
    jti: str
    iat: int
    exp: int
    kid: str
    client_id: str | None
    claims: Mapping[str, JSONValue]
    """Every claim of the token, the application's own included."""
    jkt: str | None = None
    """``cnf.jkt``: the thumbprint of the DPoP key the token is bound to (RFC 9449 section 6.1)."""


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    """A refresh token whose signature, type and issuer verified (expiry is the caller's to judge)."""

    sub: str
    sid: str
    jti: str
    gen: int
    iat: int
    exp: int
    kid: str


def _typ_matches(header: Mapping[str, Any], expected: str) -> bool:
    typ = header.get("typ")
    if not isinstance(typ, str):
        return False
    typ = typ.lower()
    return typ in (expected, "application/" + expected)


class TokenCodec:
    """Encodes and decodes access and refresh tokens with one key ring."""

    __slots__ = ("audience", "issuer", "keys", "leeway")

    def __init__(self, keys: KeyRing, *, issuer: str, audience: str, leeway: float) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway

    # -- encoding ----------------------------------------------------------------------------

    def encode_access(
        self, session: SessionRecord, jti: str, iat: int, exp: int, *, jkt: str | None = None
    ) -> str:
        """An access token of ``session``; with ``jkt``, bound to that DPoP key (``cnf.jkt``)."""
        key = self.keys.active_access
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": session.sub,
            "aud": self.audience,
            "iat": iat,
            "exp": exp,
            "jti": jti,
            "sid": session.sid,
            "client_id": session.client_id or DEFAULT_CLIENT_ID,  # sessions stored before it was set
        }
        if jkt is not None:
            payload["cnf"] = {"jkt": jkt}
        for name, value in session.claims.items():
            payload.setdefault(name, value)
        return sign(payload, key.private_key, alg=key.alg, kid=key.kid, typ=ACCESS_TYP)

    def encode_refresh(self, sub: str, record: RefreshRecord) -> str:
        """The refresh token for ``record``; the same record always gives the same bytes."""
        key = self.keys.refresh_key(record.kid)
        if key is None:
            raise UnknownKey(record.kid, "The session's refresh key is not in this key ring.")
        payload = {
            "iss": self.issuer,
            "sub": sub,
            "sid": record.sid,
            "jti": record.jti,
            "gen": record.gen,
            "iat": record.issued_at,
            "exp": record.expires_at,
        }
        return sign(payload, key.secret, alg=REFRESH_ALG, kid=key.kid, typ=REFRESH_TYP)

    # -- decoding ----------------------------------------------------------------------------

    def decode_access(self, token: str, now: float) -> AccessClaims:
        return read_access(
            token, now, self.keys.access_key, issuer=self.issuer, audience=self.audience, leeway=self.leeway
        )

    def decode_refresh(self, token: str, now: float) -> RefreshClaims:
        """Verify signature, ``typ``, ``iss`` and shape; expiry is left to the refresh decision."""
        jws = _split(token, REFRESH_TYP)
        kid = jws.header["kid"]
        key = self.keys.refresh_key(kid)
        if key is None:
            raise UnknownKey(kid, "The refresh token's key is unknown.")
        claims = _verified_claims(jws, REFRESH_ALG, key.secret, _REFRESH_REQUIRED, self.issuer)
        if "aud" in claims:
            raise TokenInvalid("A refresh token has no audience.")
        gen = claims["gen"]
        if not isinstance(gen, int) or isinstance(gen, bool) or gen < 0:
            raise TokenInvalid("The refresh token's generation is not a number.")
        iat, exp = _check_times(claims, now, self.leeway)
        return RefreshClaims(
            _str(claims, "sub"), _str(claims, "sid"), _str(claims, "jti"), gen, iat, exp, key.kid
        )

    def is_expired(self, exp: int, now: float) -> bool:
        return now > exp + self.leeway


def unverified_refresh_subject(token: str) -> str | None:
    """The ``sub`` a refresh token claims, nothing about it checked, or ``None`` if it is not that shape.

    For a caller that asks something slow about the subject beside the check (Django's subject check, on
    the request's thread) and uses the answer only once :meth:`TokenCodec.decode_refresh` has verified a
    token of the same subject.
    """
    try:
        sub = _split(token, REFRESH_TYP).claims().get("sub")
    except TokenInvalid:
        return None
    return sub if isinstance(sub, str) else None


class VerificationKey(Protocol):
    """What verifying an access token needs of a key."""

    @property
    def kid(self) -> str: ...
    @property
    def alg(self) -> str: ...
    @property
    def public_key(self) -> Any: ...


def read_access(
    token: str,
    now: float,
    find_key: Callable[[str], VerificationKey | None],
    *,
    issuer: str,
    audience: str,
    leeway: float,
) -> AccessClaims:
    """Verify an access token with the key ``find_key`` gives for its ``kid`` (docs/contract.md, Tokens).

    Shared by the token service and the resource servers' validators, so both judge a token alike.
    """
    jws = _split(token, ACCESS_TYP)
    kid = jws.header["kid"]
    key = find_key(kid)
    if key is None:
        # Expired either way: say so, so that a client refreshes instead of ending the session (its key
        # may simply have been pruned since). Refused either way, so the unverified exp is safe to read.
        exp = jws.claims().get("exp")
        if isinstance(exp, int | float) and _is_number(exp) and now > exp + leeway:
            raise TokenExpired()
        raise UnknownKey(kid, "The access token's key is unknown.")
    claims = _verified_claims(jws, key.alg, key.public_key, _ACCESS_REQUIRED, issuer)
    aud = claims["aud"]
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        raise TokenInvalid("The token is for another audience.")
    sub, sid, jti = _str(claims, "sub"), _str(claims, "sid"), _str(claims, "jti")
    iat, exp = _check_times(claims, now, leeway)
    if now > exp + leeway:
        raise TokenExpired()
    client_id = claims.get("client_id")
    if client_id is not None and not isinstance(client_id, str):
        raise TokenInvalid("The access token's client_id is not a string.")
    return AccessClaims(sub, sid, jti, iat, exp, key.kid, client_id, claims, _jkt(claims))


def _jkt(claims: Mapping[str, Any]) -> str | None:
    """``cnf.jkt``, or ``None`` without ``cnf``; a ``cnf`` of another shape is refused (never ignored:
    ignoring it would accept a bound token as a bearer one)."""
    cnf = claims.get("cnf")
    if cnf is None:
        return None
    if not isinstance(cnf, dict) or set(cnf) != {"jkt"} or not isinstance(cnf["jkt"], str) or not cnf["jkt"]:
        raise TokenInvalid("The access token's cnf is not a DPoP key thumbprint.")
    return cnf["jkt"]


def _split(token: str, typ: str) -> Compact:
    if not isinstance(token, str) or not token:
        raise TokenInvalid("No token was given.")
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenInvalid("The token is too large.")
    jws = split(token)
    header = jws.header
    if not _typ_matches(header, typ):
        raise TokenInvalid("The token is of the wrong type.")
    if not isinstance(header.get("kid"), str):
        raise TokenInvalid("The token names no key.")
    if _REFUSED_HEADERS.intersection(header):
        raise TokenInvalid("The token uses a header parameter Keyturn does not accept.")
    return jws


def _verified_claims(jws: Compact, alg: str, key: Any, required: list[str], issuer: str) -> dict[str, Any]:
    """The claims, once the algorithm (pinned by the key, never the header) and signature check out."""
    if jws.header.get("alg") != alg:
        raise TokenInvalid("The token's algorithm is wrong.")
    if not jws.verify(alg, key):
        raise TokenInvalid("The token's signature does not verify.")
    claims = jws.claims()
    for name in required:
        if name not in claims:
            raise TokenInvalid(f"The token lacks the {name} claim.")
    if claims["iss"] != issuer:
        raise TokenInvalid("The token is from another issuer.")
    return claims


def _check_times(claims: Mapping[str, Any], now: float, leeway: float) -> tuple[int, int]:
    iat, exp = claims["iat"], claims["exp"]
    if not (_is_number(iat) and _is_number(exp)):
        raise TokenInvalid("The token's iat or exp is not a number.")
    if iat > now + leeway:
        raise TokenInvalid("The token was issued in the future.")
    nbf = claims.get("nbf")
    if nbf is not None and (not _is_number(nbf) or nbf > now + leeway):
        raise TokenInvalid("The token is not valid yet.")
    return int(iat), int(exp)


def _is_number(value: object) -> bool:
    """A finite JSON number (``1e400`` parses to infinity, and Python's JSON reader accepts ``NaN``)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _str(claims: Mapping[str, Any], name: str) -> str:
    value = claims[name]
    if not isinstance(value, str) or not value:
        raise TokenInvalid(f"The token's {name} is not a string.")
    return value
