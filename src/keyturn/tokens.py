"""Token encoding and decoding with PyJWT, as DESIGN section 1 says.

Each token type has its algorithm pinned (never taken from the header) and its ``typ`` checked;
``iss``, ``aud`` (access), ``exp``/``nbf``/``iat`` are checked with a leeway against the injected time;
tokens over 8 KiB are refused before anything is parsed. A refresh token presented as an access token, or
the reverse, is ``token_invalid``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from .errors import TokenExpired, TokenInvalid
from .keys import KeyRing
from .typing import JSONValue, RefreshRecord, SessionRecord

__all__ = [
    "MAX_TOKEN_LENGTH",
    "RESERVED_CLAIMS",
    "AccessClaims",
    "RefreshClaims",
    "TokenCodec",
    "UnknownKey",
]

MAX_TOKEN_LENGTH = 8192
"""Tokens longer than this (in characters; a JWT is ASCII) are refused before parsing."""

ACCESS_TYP = "at+jwt"
REFRESH_TYP = "rt+jwt"
REFRESH_ALG = "HS256"

RESERVED_CLAIMS = frozenset(
    {"iss", "sub", "aud", "iat", "exp", "nbf", "jti", "sid", "client_id", "gen", "typ"}
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

    def encode_access(self, session: SessionRecord, jti: str, iat: int, exp: int) -> str:
        key = self.keys.active_access
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": session.sub,
            "aud": self.audience,
            "iat": iat,
            "exp": exp,
            "jti": jti,
            "sid": session.sid,
        }
        if session.client_id is not None:
            payload["client_id"] = session.client_id
        for name, value in session.claims.items():
            payload.setdefault(name, value)
        return jwt.encode(
            payload, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": ACCESS_TYP}
        )

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
        return jwt.encode(
            payload, key.secret, algorithm=REFRESH_ALG, headers={"kid": key.kid, "typ": REFRESH_TYP}
        )

    # -- decoding ----------------------------------------------------------------------------

    def decode_access(self, token: str, now: float) -> AccessClaims:
        header = self._header(token, ACCESS_TYP)
        key = self.keys.access_key(header["kid"])
        if key is None:
            raise UnknownKey(header["kid"], "The access token's key is unknown.")
        if header.get("alg") != key.alg:
            raise TokenInvalid("The access token's algorithm is wrong.")
        claims = self._verify(token, key.public_key, key.alg, _ACCESS_REQUIRED, audience=self.audience)
        sub, sid, jti = _str(claims, "sub"), _str(claims, "sid"), _str(claims, "jti")
        iat, exp = self._check_times(claims, now)
        if now > exp + self.leeway:
            raise TokenExpired()
        client_id = claims.get("client_id")
        if client_id is not None and not isinstance(client_id, str):
            raise TokenInvalid("The access token's client_id is not a string.")
        return AccessClaims(sub, sid, jti, iat, exp, key.kid, client_id, claims)

    def decode_refresh(self, token: str, now: float) -> RefreshClaims:
        """Verify signature, ``typ``, ``iss`` and shape; expiry is left to the refresh decision."""
        header = self._header(token, REFRESH_TYP)
        key = self.keys.refresh_key(header["kid"])
        if key is None:
            raise UnknownKey(header["kid"], "The refresh token's key is unknown.")
        if header.get("alg") != REFRESH_ALG:
            raise TokenInvalid("The refresh token's algorithm is wrong.")
        claims = self._verify(token, key.secret, REFRESH_ALG, _REFRESH_REQUIRED, audience=None)
        if "aud" in claims:
            raise TokenInvalid("A refresh token has no audience.")
        gen = claims["gen"]
        if not isinstance(gen, int) or isinstance(gen, bool) or gen < 0:
            raise TokenInvalid("The refresh token's generation is not a number.")
        iat, exp = self._check_times(claims, now)
        return RefreshClaims(
            _str(claims, "sub"), _str(claims, "sid"), _str(claims, "jti"), gen, iat, exp, key.kid
        )

    def is_expired(self, exp: int, now: float) -> bool:
        return now > exp + self.leeway

    def _header(self, token: str, typ: str) -> dict[str, Any]:
        if not isinstance(token, str) or not token:
            raise TokenInvalid("No token was given.")
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenInvalid("The token is too large.")
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError) as exc:
            raise TokenInvalid("The token is malformed.") from exc
        if not _typ_matches(header, typ):
            raise TokenInvalid("The token is of the wrong type.")
        if not isinstance(header.get("kid"), str):
            raise TokenInvalid("The token names no key.")
        if _REFUSED_HEADERS.intersection(header):
            raise TokenInvalid("The token uses a header parameter Keyturn does not accept.")
        return header

    def _verify(
        self,
        token: str,
        key: Any,
        alg: str,
        required: list[str],
        *,
        audience: str | None,
    ) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=self.issuer,
                options={
                    "require": required,
                    "verify_exp": False,  # checked against the injected clock instead
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": audience is not None,
                },
            )
        except (jwt.PyJWTError, ValueError) as exc:
            raise TokenInvalid(_describe(exc)) from exc

    def _check_times(self, claims: Mapping[str, Any], now: float) -> tuple[int, int]:
        iat, exp = claims["iat"], claims["exp"]
        if not (_is_number(iat) and _is_number(exp)):
            raise TokenInvalid("The token's iat or exp is not a number.")
        if iat > now + self.leeway:
            raise TokenInvalid("The token was issued in the future.")
        nbf = claims.get("nbf")
        if nbf is not None and (not _is_number(nbf) or nbf > now + self.leeway):
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


def _describe(exc: Exception) -> str:
    if isinstance(exc, jwt.InvalidAudienceError):
        return "The token is for another audience."
    if isinstance(exc, jwt.InvalidIssuerError):
        return "The token is from another issuer."
    if isinstance(exc, jwt.InvalidSignatureError):
        return "The token's signature does not verify."
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "The token's algorithm is not allowed."
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"The token lacks the {exc.claim} claim."
    return "The token is malformed."
