"""Hostile tokens and malformed requests over real HTTP: each gets its documented code, never a 500."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.algorithms import ECAlgorithm

from keyturn._sign import low_s
from keyturn.keys import MasterKey

from ._http import (
    assert_error,
    b64url,
    b64url_json,
    bearer,
    fp,
    jwt_parts,
    login,
    me,
    refresh,
    why,
)
from ._server import Cluster, cluster

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


@dataclass
class Hostile:
    server: Cluster
    forge: Forge


def server_signing_keys(data_dir: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The service's private keys by kid, decrypted from its data dir (what only an operator holds)."""
    master = MasterKey((data_dir / "secret.key").read_text().strip())
    with contextlib.closing(sqlite3.connect(data_dir / "keyturn.db")) as db:
        rows = db.execute("SELECT kid, use, material FROM signing_keys").fetchall()
    access = {
        kid: serialization.load_der_private_key(master.decrypt(bytes(material)), password=None)
        for kid, use, material in rows
        if use == "access"
    }
    refresh_keys = {kid: master.decrypt(bytes(material)) for kid, use, material in rows if use == "refresh"}
    return access, refresh_keys


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    """One server, a live session of alice's, and what is needed to forge tokens against it."""
    with cluster(tmp_path_factory.mktemp("hostile")) as group:
        with group.server.client() as http:
            jwks = http.get("/.well-known/jwks.json").json()
            pair = login(http, group.username, group.password)
        (jwk,) = jwks["keys"]
        access_header, access_claims = jwt_parts(pair["access_token"])
        refresh_header, refresh_claims = jwt_parts(pair["refresh_token"])
        assert access_header["kid"] == jwk["kid"]
        access_keys, refresh_keys = server_signing_keys(group.data_dir)
        server_access_key = access_keys[jwk["kid"]]
        assert isinstance(server_access_key, ec.EllipticCurvePrivateKey)
        public = ECAlgorithm.from_jwk(json.dumps(jwk))
        assert isinstance(public, ec.EllipticCurvePublicKey)
        forge = Forge(
            jwk=jwk,
            jwk_text=json.dumps(jwk),
            public_pem=public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            access_kid=jwk["kid"],
            refresh_kid=refresh_header["kid"],
            server_access_key=server_access_key,
            server_refresh_secret=refresh_keys[refresh_header["kid"]],
            own_key=ec.generate_private_key(ec.SECP256R1()),
            access_claims=access_claims,
            refresh_claims=refresh_claims,
            real_access=pair["access_token"],
            real_refresh=pair["refresh_token"],
        )
        yield Hostile(group, forge)


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
    the token checks in a header too; a larger one is the server's 431, tested below.)"""
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


def session_row(h: Hostile) -> tuple[str, str, int]:
    """alice's session as the store has it: state, head and generation."""
    sid = jwt_parts(h.forge.real_access)[1]["sid"]
    with contextlib.closing(sqlite3.connect(h.server.data_dir / "keyturn.db")) as db:
        row = db.execute("SELECT state, head_jti, gen FROM sessions WHERE sid = ?", (sid,)).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def assert_session_untouched(h: Hostile, http: httpx.Client) -> None:
    """No hostile token may have ended or rotated alice's session: it is live, at its first head."""
    assert me(http, h.forge.real_access).status_code == 200
    state, head_jti, gen = session_row(h)
    assert (state, gen) == ("active", 0)
    assert head_jti == jwt_parts(h.forge.real_refresh)[1]["jti"]


# -- tokens ------------------------------------------------------------------------------------------


def test_forging_control_tokens_without_a_defect_are_accepted(hostile: Hostile) -> None:
    """The forging here is sound: with no defect added, the service accepts what it builds."""
    f = hostile.forge
    with hostile.server.server.client() as http:
        access = server_signed(f, "access", header_for(f, "access"), claims_for(f, "access"))
        assert me(http, access).status_code == 200
        # RFC 9068's long form of the type is accepted too.
        long_typ = header_for(f, "access", typ="application/at+jwt")
        assert me(http, server_signed(f, "access", long_typ, claims_for(f, "access"))).status_code == 200
        # A second session of alice's; its refresh token re-signed from its own claims is the same token.
        pair = login(http, hostile.server.username, hostile.server.password)
        header, claims = jwt_parts(pair["refresh_token"])
        resigned = hmac_jwt(header, claims, f.server_refresh_secret)
        assert fp(resigned) == fp(pair["refresh_token"])
        rotated = refresh(http, resigned)
        assert rotated.status_code == 200, why(rotated)
    own = own_signed(f, "access", header_for(f, "access"), claims_for(f, "access"))
    verified = jwt.decode(own, f.own_key.public_key(), algorithms=["ES256"], audience=AUDIENCE, issuer=ISSUER)
    assert verified["sid"] == f.access_claims["sid"]


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_access_token_on_me_is_token_invalid(hostile: Hostile, kind: str) -> None:
    """A forged, confused or malformed access token is refused with token_invalid, never accepted."""
    token = HOSTILE[kind](hostile.forge, "access")
    with hostile.server.server.client() as http:
        assert_error(me(http, token), 401, "token_invalid")
        assert_session_untouched(hostile, http)


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_refresh_token_on_refresh_is_token_invalid(hostile: Hostile, kind: str) -> None:
    """A forged, confused or malformed refresh token is refused with token_invalid and rotates nothing."""
    token = HOSTILE[kind](hostile.forge, "refresh")
    with hostile.server.server.client() as http:
        assert_error(refresh(http, token), 401, "token_invalid")
        assert_session_untouched(hostile, http)


def test_refresh_token_sent_as_access_token_is_token_invalid(hostile: Hostile) -> None:
    """A refresh token is never an access token, even though it is genuine."""
    with hostile.server.server.client() as http:
        assert_error(me(http, hostile.forge.real_refresh), 401, "token_invalid")


def test_access_token_sent_as_refresh_token_is_token_invalid(hostile: Hostile) -> None:
    """An access token is never a refresh token, even though it is genuine."""
    with hostile.server.server.client() as http:
        assert_error(refresh(http, hostile.forge.real_access), 401, "token_invalid")
        assert_session_untouched(hostile, http)


def test_expired_access_token_signed_by_the_service_is_token_expired(hostile: Hostile) -> None:
    """A genuine access token past exp (and the leeway) gets token_expired, so the client refreshes."""
    f = hostile.forge
    long_ago = int(time.time()) - 7200
    token = server_signed(
        f, "access", header_for(f, "access"), claims_for(f, "access", iat=long_ago, exp=long_ago + 900)
    )
    with hostile.server.server.client() as http:
        assert_error(me(http, token), 401, "token_expired")
        assert_error(refresh(http, token), 401, "token_invalid")


def test_expired_refresh_token_signed_by_the_service_is_refresh_token_expired(hostile: Hostile) -> None:
    """A genuine refresh token past its idle lifetime ends with refresh_token_expired, not a reuse."""
    f = hostile.forge
    long_ago = int(time.time()) - 7200
    claims = claims_for(f, "refresh", iat=long_ago, exp=long_ago + 900)
    with hostile.server.server.client() as http:
        assert_error(
            refresh(http, server_signed(f, "refresh", header_for(f, "refresh"), claims)),
            401,
            "refresh_token_expired",
        )
        assert_session_untouched(hostile, http)


def test_naturally_expired_access_token_is_token_expired(tmp_path: Path) -> None:
    """An access token the server issued itself, once past its (1 s) lifetime, gets token_expired."""
    short = {"KEYTURN_ACCESS_TOKEN_LIFETIME": "1", "KEYTURN_LEEWAY": "0"}
    with cluster(tmp_path / "data", 1, short) as group, group.server.client() as http:
        pair = login(http, group.username, group.password)
        assert pair["expires_in"] <= 1
        deadline = time.monotonic() + 30
        answer = me(http, pair["access_token"])
        while answer.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.25)
            answer = me(http, pair["access_token"])
        assert_error(answer, 401, "token_expired")
        # What a client does next: refresh, which still works.
        renewed = refresh(http, pair["refresh_token"])
        assert renewed.status_code == 200, why(renewed)


def test_oversized_token_in_authorization_header_is_refused_with_the_error_body(hostile: Hostile) -> None:
    """A 20 KB bearer token is refused as token_invalid, never a 500; a 100 KB one is over the request-head
    cap of ``keyturn serve`` (issue 18) and refused before the app with 431, in the same error body."""
    with hostile.server.server.client() as http:
        # refused for its size (over the 8 KiB token cap), not only as a token that does not parse
        for answer in (
            http.get("/auth/me", headers=bearer("a" * 20_000)),
            http.post("/auth/logout", headers=bearer("a" * 20_000)),
        ):
            body = assert_error(answer, 401, "token_invalid")
            assert body["error_description"] == "The token is too large."
        assert_error(http.get("/auth/me", headers=bearer("a" * 100_000)), 431, "invalid_request")


def test_100kb_token_in_json_body_is_token_invalid(hostile: Hostile) -> None:
    """A 100 KB refresh token in the body reaches the token checks and is refused as too large."""
    with hostile.server.server.client() as http:
        assert_error(refresh(http, "a" * 100_000), 401, "token_invalid")
        assert_error(http.post("/auth/logout", json={"refresh_token": "a" * 100_000}), 401, "token_invalid")


@pytest.mark.parametrize(
    "header",
    ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer not a token", "Token abc", "bearer-abc"],
)
def test_authorization_header_that_is_not_bearer_is_token_invalid(hostile: Hostile, header: str) -> None:
    """Anything but 'Bearer <token>' is a malformed credential, answered 401 with a challenge."""
    with hostile.server.server.client() as http:
        assert_error(http.get("/auth/me", headers={"Authorization": header}), 401, "token_invalid")


def test_no_authorization_header_is_token_invalid(hostile: Hostile) -> None:
    """A call without an access token gets 401 with a challenge, not a 500 or a 422."""
    with hostile.server.server.client() as http:
        assert_error(http.get("/auth/me"), 401, "token_invalid")
        assert_error(http.get("/auth/sessions"), 400, "invalid_request")  # it takes the refresh token


# -- malformed requests ------------------------------------------------------------------------------

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("path", "content", "headers"),
    [
        ("/auth/login", b"not json", JSON),
        ("/auth/login", b"{", JSON),
        ("/auth/login", b'{"username": 1, "password": []}', JSON),
        ("/auth/login", b'{"username": "alice"}', JSON),
        ("/auth/login", b'{"password": "x"}', JSON),
        ("/auth/login", b"{}", JSON),
        ("/auth/login", b"[]", JSON),
        ("/auth/login", b'{"username": "", "password": ""}', JSON),
        ("/auth/login", b"", JSON),
        ("/auth/login", b"username=alice&password=x", {"content-type": "application/x-www-form-urlencoded"}),
        ("/auth/refresh", b"not json", JSON),
        ("/auth/refresh", b'{"refresh_token": 12}', JSON),
        ("/auth/refresh", b'{"refresh_token": ["a"]}', JSON),
        ("/auth/refresh", b"{}", JSON),
        ("/auth/refresh", b'"a string"', JSON),
        ("/auth/refresh", b"\xff\xfe\xfd", JSON),
        # a body must say it is JSON, on every route (FastAPI's strict content type; refresh parses its own)
        ("/auth/refresh", b'{"refresh_token": "x"}', {"content-type": "text/plain"}),
        ("/auth/refresh", b'{"refresh_token": "x"}', {"content-type": ""}),
        ("/auth/login", b'{"username": "alice", "password": "x"}', {"content-type": "text/plain"}),
        ("/auth/logout", b"not json", JSON),
        ("/auth/logout", b"{}", JSON),
        ("/auth/logout-all", b"{}", JSON),
        ("/auth/revoke", b"not json", JSON),
        ("/auth/revoke", b"{}", JSON),
        ("/auth/revoke", b'{"token": 5}', JSON),
        ("/auth/revoke", b"token_type_hint=x", {"content-type": "application/x-www-form-urlencoded"}),
        # JSON nested deeper than a parser recurses, well under the size cap
        ("/auth/revoke", b"[" * 100_000, JSON),
        ("/auth/refresh", b"[" * 100_000, JSON),
        ("/auth/login", b'{"username": ' + b"[" * 100_000, JSON),
    ],
)
def test_malformed_body_is_invalid_request(
    hostile: Hostile, path: str, content: bytes, headers: dict[str, str]
) -> None:
    """A body that is not what the endpoint takes is a 400 invalid_request with the error body."""
    with hostile.server.server.client() as http:
        body = assert_error(http.post(path, content=content, headers=headers), 400, "invalid_request")
        # The description says what is wrong without echoing what was sent.
        assert "alice" not in body["error_description"]


@pytest.mark.parametrize("path", ["/auth/login", "/auth/refresh", "/auth/logout", "/auth/revoke"])
def test_body_over_the_cap_is_413_with_error_body(hostile: Hostile, path: str) -> None:
    """A 1 MiB body is refused before it is read whole, with 413 and the one error body."""
    with hostile.server.server.client() as http:
        answer = http.post(path, content=b"{" + b" " * (1 << 20) + b"}", headers=JSON)
        assert_error(answer, 413, "invalid_request")


@pytest.mark.parametrize("path", ["/auth/login", "/auth/refresh", "/auth/logout", "/auth/revoke"])
def test_chunked_body_over_the_cap_is_refused_with_error_body(hostile: Hostile, path: str) -> None:
    """A body over the cap without a Content-Length (chunked) is refused as invalid_request, never a 500.

    docs/contract.md: 413, or 400 when the overflow happens while a JSON body is being parsed.
    """

    def chunks() -> Iterator[bytes]:
        yield b'{"refresh_token": "'
        for _ in range(128):
            yield b"a" * 8192
        yield b'"}'

    with hostile.server.server.client() as http:
        answer = http.post(path, content=chunks(), headers=JSON)
        assert "content-length" not in answer.request.headers
        assert answer.status_code in {400, 413}, why(answer)
        assert_error(answer, answer.status_code, "invalid_request")
        assert_session_untouched(hostile, http)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nope", 404),
        ("GET", "/auth/nope", 404),
        ("POST", "/auth", 404),
        ("GET", "/.well-known/nope", 404),
        ("GET", "/auth/login", 405),
        ("DELETE", "/auth/refresh", 405),
        ("PUT", "/auth/me", 405),
    ],
)
def test_unknown_path_or_method_has_error_body(hostile: Hostile, method: str, path: str, status: int) -> None:
    """Even a wrong URL gets the one error body, so every caller can parse every failure."""
    with hostile.server.server.client() as http:
        assert_error(http.request(method, path), status, "invalid_request")
