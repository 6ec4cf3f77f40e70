"""Hostile tokens over real HTTP: forged, confused, malformed, expired or oversized access and refresh
tokens and credentials each get their documented code, never a 500, and leave alice's session untouched.
"""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from ._forge import AUDIENCE, HOSTILE, ISSUER, claims_for, header_for, hmac_jwt, own_signed, server_signed
from ._hostile import Hostile, assert_session_untouched
from ._http import assert_error, bearer, fp, jwt_parts, login, me, refresh, why
from ._server import cluster


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
    ("header", "bare"),
    [
        ("Basic YWxpY2U6c2VjcmV0", True),
        ("Token abc", True),
        ("bearer-abc", True),
        ("Bearer", False),
        ("Bearer not a token", False),
    ],
)
def test_authorization_header_that_is_not_bearer_is_token_invalid(
    hostile: Hostile, header: str, bare: bool
) -> None:
    """Anything but 'Bearer <token>' is answered 401 ``token_invalid`` with a challenge: another scheme
    carries no bearer credentials, so the bare one (RFC 6750 section 3.1); a broken Bearer one,
    ``error="invalid_token"``."""
    with hostile.server.server.client() as http:
        response = http.get("/auth/me", headers={"Authorization": header})
        assert_error(response, 401, "token_invalid", bare=bare)


def test_no_authorization_header_is_token_invalid(hostile: Hostile) -> None:
    """A call without an access token gets 401 with the bare challenge (RFC 6750 section 3.1), not a 500
    or a 422."""
    with hostile.server.server.client() as http:
        assert_error(http.get("/auth/me"), 401, "token_invalid", bare=True)
        assert_error(http.get("/auth/sessions"), 400, "invalid_request")  # it takes the refresh token
