"""Forging tokens against a live ``keyturn serve``: what an attacker (or, for the real-key cases, an
operator holding the data dir) can sign with (:class:`Forge`), and the catalogue of hostile tokens
(:data:`HOSTILE`) that ``test_hostile_tokens.py`` sends as access and as refresh tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from keyturn._sign import low_s

from ._http import b64url, b64url_json, jwt_parts

ISSUER = "keyturn"
AUDIENCE = "keyturn-api"


@dataclass(repr=False)
class Forge:
    """What an attacker (or, for the real-key cases, an operator holding the data dir) can sign with."""

    jwk: dict[str, Any]
    jwk_text: str
    public_pem: bytes
    access_kid: str
    refresh_kid: str
    server_access_key: ec.EllipticCurvePrivateKey
    server_refresh_secret: bytes
    own_key: ec.EllipticCurvePrivateKey
    access_claims: dict[str, Any]
    refresh_claims: dict[str, Any]
    real_access: str
    real_refresh: str


# -- token makers --------------------------------------------------------------------------------

Shape = str  # "access" (typ at+jwt, for /auth/me) or "refresh" (typ rt+jwt, for /auth/refresh)


def hmac_jwt(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """An HS256 JWT computed by hand (PyJWT refuses a PEM as an HMAC secret, as it should)."""
    signing_input = f"{b64url_json(header)}.{b64url_json(payload)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def header_for(f: Forge, shape: Shape, **changes: Any) -> dict[str, Any]:
    base = (
        {"alg": "ES256", "typ": "at+jwt", "kid": f.access_kid}
        if shape == "access"
        else {"alg": "HS256", "typ": "rt+jwt", "kid": f.refresh_kid}
    )
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def claims_for(f: Forge, shape: Shape, **changes: Any) -> dict[str, Any]:
    """Fresh claims of ``shape`` for alice's live session, so only the forgery can be refused."""
    now = int(time.time())
    base = dict(f.access_claims if shape == "access" else f.refresh_claims)
    base.update({"jti": secrets.token_urlsafe(16), "iat": now, "exp": now + 600})
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def es256_jwt(header: dict[str, Any], payload: dict[str, Any], key: ec.EllipticCurvePrivateKey) -> str:
    """An ES256 JWT computed by hand, with the header exactly as given (no library fills anything in)."""
    signing_input = f"{b64url_json(header)}.{b64url_json(payload)}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64url(low_s(r.to_bytes(32, 'big') + s.to_bytes(32, 'big')))}"


def server_signed(f: Forge, shape: Shape, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """Signed with the service's own key for ``shape``: only the claim or header check can refuse it."""
    if shape == "access":
        return es256_jwt(header, claims, f.server_access_key)
    return hmac_jwt(header, claims, f.server_refresh_secret)


def own_signed(f: Forge, shape: Shape, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """Validly signed, but with a key the service never made."""
    if shape == "access":
        return es256_jwt(header, claims, f.own_key)
    return hmac_jwt(header, claims, secrets.token_bytes(32))


def alg_none(f: Forge, shape: Shape) -> str:
    header = header_for(f, shape, alg="none")
    return f"{b64url_json(header)}.{b64url_json(claims_for(f, shape))}."


def alg_none_with_signature(f: Forge, shape: Shape) -> str:
    real = f.real_access if shape == "access" else f.real_refresh
    header = header_for(f, shape, alg="none")
    return f"{b64url_json(header)}.{b64url_json(claims_for(f, shape))}.{real.rsplit('.', 1)[1]}"


def hs256_with_public_jwk(f: Forge, shape: Shape) -> str:
    """The classic confusion: the published key used as an HMAC secret, under the published kid."""
    header = header_for(f, shape, alg="HS256", kid=f.access_kid)
    return hmac_jwt(header, claims_for(f, shape), f.jwk_text.encode())


def hs256_with_public_pem(f: Forge, shape: Shape) -> str:
    header = header_for(f, shape, alg="HS256", kid=f.access_kid)
    return hmac_jwt(header, claims_for(f, shape), f.public_pem)


def hs256_with_public_pem_refresh_kid(f: Forge, shape: Shape) -> str:
    header = header_for(f, shape, alg="HS256", kid=f.refresh_kid)
    return hmac_jwt(header, claims_for(f, shape), f.public_pem)


def wrong_typ(f: Forge, shape: Shape) -> str:
    return server_signed(f, shape, header_for(f, shape, typ="JWT"), claims_for(f, shape))


def no_typ(f: Forge, shape: Shape) -> str:
    return server_signed(f, shape, header_for(f, shape, typ=None), claims_for(f, shape))


def other_shape_typ(f: Forge, shape: Shape) -> str:
    """A token that claims the other type while signed with this type's key."""
    typ = "rt+jwt" if shape == "access" else "at+jwt"
    return server_signed(f, shape, header_for(f, shape, typ=typ), claims_for(f, shape))


def wrong_iss(f: Forge, shape: Shape) -> str:
    return server_signed(f, shape, header_for(f, shape), claims_for(f, shape, iss="https://evil.example"))


def wrong_aud(f: Forge, shape: Shape) -> str:
    # A refresh token has no audience at all; one that carries any is refused.
    return server_signed(f, shape, header_for(f, shape), claims_for(f, shape, aud="other-api"))


def own_key_server_kid_wrong_iss(f: Forge, shape: Shape) -> str:
    return own_signed(f, shape, header_for(f, shape), claims_for(f, shape, iss="https://evil.example"))


def own_key_server_kid_wrong_aud(f: Forge, shape: Shape) -> str:
    return own_signed(f, shape, header_for(f, shape), claims_for(f, shape, aud="other-api"))


def own_key_server_kid(f: Forge, shape: Shape) -> str:
    return own_signed(f, shape, header_for(f, shape), claims_for(f, shape))


def own_key_own_kid(f: Forge, shape: Shape) -> str:
    return own_signed(f, shape, header_for(f, shape, kid="attacker-key"), claims_for(f, shape))


def tampered_payload(f: Forge, shape: Shape) -> str:
    real = f.real_access if shape == "access" else f.real_refresh
    header, _, signature = real.split(".")
    _, claims = jwt_parts(real)
    return f"{header}.{b64url_json({**claims, 'sub': 'mallory'})}.{signature}"


def missing_sid(f: Forge, shape: Shape) -> str:
    return server_signed(f, shape, header_for(f, shape), claims_for(f, shape, sid=None))


def issued_in_the_future(f: Forge, shape: Shape) -> str:
    later = int(time.time()) + 3600
    return server_signed(f, shape, header_for(f, shape), claims_for(f, shape, iat=later, exp=later + 600))


def not_base64(f: Forge, shape: Shape) -> str:
    return "%%%.***.@@@"


def header_not_json(f: Forge, shape: Shape) -> str:
    return f"{b64url(b'not json')}.{b64url_json(claims_for(f, shape))}.{b64url(b'sig')}"


def header_a_list(f: Forge, shape: Shape) -> str:
    return f"{b64url(b'[1,2]')}.{b64url_json(claims_for(f, shape))}.{b64url(b'sig')}"


def two_segments(f: Forge, shape: Shape) -> str:
    return f"{b64url_json(header_for(f, shape))}.{b64url_json(claims_for(f, shape))}"


def kid_not_a_string(f: Forge, shape: Shape) -> str:
    return server_signed(f, shape, header_for(f, shape, kid=7), claims_for(f, shape))


def crit_header(f: Forge, shape: Shape) -> str:
    header = header_for(f, shape, crit=["exp"])
    return server_signed(f, shape, header, claims_for(f, shape))


def huge_20kb(f: Forge, shape: Shape) -> str:
    """A well-formed, server-signed token padded to 20 KB: refused for its size before parsing.

    (Over the 8 KiB token cap and under ``keyturn serve``'s 32 KiB request-head cap, so that it reaches
    the token checks in a header too; a larger one is the server's 431, tested in
    ``test_hostile_tokens.py``.)"""
    claims = claims_for(f, shape, pad="x" * 20_000)
    return server_signed(f, shape, header_for(f, shape), claims)


HOSTILE: dict[str, Callable[[Forge, Shape], str]] = {
    fn.__name__: fn
    for fn in (
        alg_none,
        alg_none_with_signature,
        hs256_with_public_jwk,
        hs256_with_public_pem,
        hs256_with_public_pem_refresh_kid,
        wrong_typ,
        no_typ,
        other_shape_typ,
        wrong_iss,
        wrong_aud,
        own_key_server_kid_wrong_iss,
        own_key_server_kid_wrong_aud,
        own_key_server_kid,
        own_key_own_kid,
        tampered_payload,
        missing_sid,
        issued_in_the_future,
        not_base64,
        header_not_json,
        header_a_list,
        two_segments,
        kid_not_a_string,
        crit_header,
        huge_20kb,
    )
}
