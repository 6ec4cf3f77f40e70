"""Endpoint shapes: reading a token answer, and keeping a session alive against Keyturn or SimpleJWT.

The client reads expiry and the server's clock from the answer (``expires_in``, ``server_time``) or, for
servers that say neither, from the access token's ``exp`` and ``iat``. A misread here refreshes at the
wrong time for every user, so the shapes are checked against the answers of the real servers: Keyturn
(in process, under a custom route prefix too) and djangorestframework-simplejwt (the reference server
process of the end-to-end tests).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from keyturn.client import KEYTURN, SIMPLEJWT, KeyturnAuth, LoginFailed, SessionEnded, TokenManager, Tokens
from keyturn.clock import FrozenClock, SystemClock

from ..e2e._simplejwt import SimpleJWTServer, simplejwt_server
from ._client_live import TLS, Harness, LiveService, live_service


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _jwt(**claims: Any) -> str:
    return jwt.encode(claims, secrets.token_bytes(32), "HS256")


# -- Keyturn's shape ----------------------------------------------------------------------------


def test_keyturn_answers_give_expiry_refresh_expiry_session_and_offset() -> None:
    body = {
        "access_token": "a.b.c",
        "refresh_token": "r.s.t",
        "token_type": "Bearer",
        "expires_in": 900,
        "refresh_expires_in": 86400,
        "session_id": "sid-1",
        "server_time": 5000.5,
    }
    tokens = KEYTURN.tokens(body, None, sent=100.0, received=104.0)

    assert tokens.access_expires_at == 5900.5
    assert tokens.lifetime == 900
    assert tokens.refresh_expires_at == 5000.5 + 86400
    assert tokens.session_id == "sid-1"
    assert tokens.clock_offset == 5000.5 - 102.0  # the midpoint of the call
    assert (tokens.access_token, tokens.refresh_token) == ("a.b.c", "r.s.t")


def test_keyturns_real_login_answer_reads_as_its_tokens_say(service: LiveService) -> None:
    """Read the real answer, then hold it against the tokens' own claims."""
    service.fresh()
    body = service.login_body()
    tokens = KEYTURN.tokens(body, None, sent=10.0, received=10.0)
    access, refresh = _claims(tokens.access_token), _claims(tokens.refresh_token)

    assert tokens.access_expires_at == access["exp"]
    assert tokens.lifetime == access["exp"] - access["iat"]
    assert tokens.refresh_expires_at == refresh["exp"]
    assert tokens.session_id == access["sid"] == refresh["sid"]
    assert tokens.clock_offset == service.clock.now() - 10.0


BAD_ANSWERS: dict[str, object] = {
    "not-an-object": ["access_token"],
    "no-access-token": {"refresh_token": "r", "expires_in": 900},
    "access-token-not-a-string": {"access_token": 5, "refresh_token": "r", "expires_in": 900},
    "no-refresh-token": {"access_token": "a", "expires_in": 900},
    "no-expiry-at-all": {"access_token": "not-a-jwt", "refresh_token": "r"},
}


@pytest.mark.parametrize("body", list(BAD_ANSWERS.values()), ids=list(BAD_ANSWERS))
def test_an_answer_without_a_usable_pair_is_refused(body: object) -> None:
    with pytest.raises(ValueError, match="answer"):
        KEYTURN.tokens(body, None, 0.0, 0.0)


@pytest.mark.parametrize("odd", [math.nan, math.inf, True, "1800000000", None])
def test_an_odd_server_time_falls_back_to_the_tokens_iat(odd: object) -> None:
    """``NaN`` or a string where a number belongs must not poison the clock offset."""
    access = _jwt(iat=1_800_000_000, exp=1_800_000_900)
    body = {"access_token": access, "refresh_token": "r", "expires_in": 900, "server_time": odd}
    tokens = KEYTURN.tokens(body, None, 1_700_000_000.0, 1_700_000_000.0)
    assert tokens.clock_offset == 100_000_000.0
    assert tokens.access_expires_at == 1_800_000_900.0


def test_an_answer_without_server_time_or_iat_measures_no_offset() -> None:
    body = {"access_token": "not-a-jwt", "refresh_token": "r", "expires_in": 60}
    tokens = KEYTURN.tokens(body, None, 1000.0, 1002.0)
    assert tokens.clock_offset == 0.0
    assert tokens.access_expires_at == 1061.0


def test_error_codes_are_read_from_each_shapes_field() -> None:
    assert KEYTURN.error_code({"error": "session_revoked", "code": "x"}) == "session_revoked"
    assert (
        SIMPLEJWT.error_code({"detail": "Token is blacklisted", "code": "token_not_valid"})
        == "token_not_valid"
    )
    assert KEYTURN.error_code({"error": 5}) is None
    assert KEYTURN.error_code(["error"]) is None


def test_with_prefix_moves_every_route_and_nothing_else() -> None:
    moved = KEYTURN.with_prefix("/api/v2/auth/")
    assert (moved.login, moved.refresh, moved.logout) == (
        "/api/v2/auth/login",
        "/api/v2/auth/refresh",
        "/api/v2/auth/logout",
    )
    assert moved.refresh_field == KEYTURN.refresh_field
    assert moved.definitive == KEYTURN.definitive
    assert SIMPLEJWT.with_prefix("/jwt").logout is None
    assert KEYTURN.with_prefix("").login == "/login"
    assert KEYTURN.login == "/auth/login", "the original shape changed"


@pytest.fixture(scope="module")
def prefixed() -> Iterator[LiveService]:
    with live_service(route_prefix="/v2/auth") as live:
        yield live


def test_a_service_under_another_prefix_keeps_its_session_alive(prefixed: LiveService) -> None:
    h = Harness.on(prefixed)
    try:
        manager = h.manager(endpoints=KEYTURN.with_prefix("/v2/auth"))
        pair = h.login(manager)
        h.advance(700)
        token = manager.access_token()
        assert token != pair.access_token
        assert prefixed.ctl.count("POST", "/v2/auth/refresh") == 1
        manager.logout()
        assert prefixed.ctl.count("POST", "/v2/auth/logout") == 1
        again = prefixed.raw("POST", "/v2/auth/refresh", json={"refresh_token": pair.refresh_token})
        assert again.json()["error"] == "session_revoked"

        unprefixed = h.manager()
        with pytest.raises(LoginFailed) as failed:
            h.login(unprefixed)
        assert failed.value.status == 404
    finally:
        h.close()


# -- SimpleJWT's shape --------------------------------------------------------------------------


def test_simplejwt_answers_take_expiry_and_server_time_from_the_access_token() -> None:
    access = _jwt(token_type="access", iat=1_800_000_000, exp=1_800_000_300, jti="j")
    tokens = SIMPLEJWT.tokens({"access": access, "refresh": "r.s.t"}, None, 1_799_999_990.0, 1_799_999_994.0)

    assert tokens.access_expires_at == 1_800_000_300
    assert tokens.lifetime == 300
    assert tokens.clock_offset == 1_800_000_000 - 1_799_999_992.0
    assert tokens.refresh_token == "r.s.t"
    assert tokens.refresh_expires_at is None


def test_simplejwt_without_rotation_keeps_the_refresh_token() -> None:
    """``ROTATE_REFRESH_TOKENS = False`` answers a refresh with ``{"access"}`` alone."""
    previous = Tokens("old.a.b", "keep.r.t", 1.0, 300.0)
    access = _jwt(iat=2000, exp=2300)
    tokens = SIMPLEJWT.tokens({"access": access}, previous, 2000.0, 2000.0)
    assert tokens.refresh_token == "keep.r.t"
    assert tokens.access_expires_at == 2300
    with pytest.raises(ValueError, match="refresh token"):
        SIMPLEJWT.tokens({"access": access}, None, 2000.0, 2000.0)


@pytest.fixture(scope="module")
def simplejwt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleJWTServer]:
    """The reference SimpleJWT server (rotation and blacklist on), access tokens living 3 s."""
    with simplejwt_server(Path(tmp_path_factory.mktemp("simplejwt")), access_lifetime=3) as server:
        yield server


def _simplejwt_manager(
    server: SimpleJWTServer, clock: Any, **kwargs: Any
) -> tuple[TokenManager, httpx.Client]:
    http = httpx.Client(base_url=server.url, timeout=30, verify=TLS)
    return TokenManager(server.url, endpoints=SIMPLEJWT, clock=clock, http=http, **kwargs), http


def test_a_simplejwt_session_is_read_refreshed_and_rotated(simplejwt: SimpleJWTServer) -> None:
    started = time.time()
    clock = FrozenClock(started)
    manager, http = _simplejwt_manager(simplejwt, clock)
    try:
        before = simplejwt.stats()["refresh_200"]
        first = manager.login(simplejwt.username, simplejwt.password)
        claims = _claims(first.access_token)
        assert first.access_expires_at == claims["exp"]
        assert first.lifetime == claims["exp"] - claims["iat"]
        # SimpleJWT counts exp from the refresh token's making and iat from the access token's, later in
        # the same request, both in whole seconds: a server stalled over a second between the two gives a
        # 3 s token an exp - iat of 1 (as test_simplejwt_server's lifetime test saw on CI at load 9).
        assert 1 <= first.lifetime <= 3
        assert first.clock_offset == claims["iat"] - started  # iat stands in for the server's time

        # Due (a sixth of the lifetime left, under the third the client keeps), by the client's clock,
        # which is the server's shifted by clock_offset: 2.5 s for the 3 s token of a quiet machine.
        clock.advance(first.lifetime * 5 / 6)
        token = manager.access_token()

        assert token != first.access_token
        assert simplejwt.stats()["refresh_200"] == before + 1
        assert manager.tokens is not None
        rotated = manager.tokens.refresh_token != first.refresh_token
        assert rotated
        me = http.get("/api/me/", headers={"Authorization": f"Bearer {token}"})
        assert me.json() == {"username": simplejwt.username}
    finally:
        http.close()


def test_simplejwt_token_not_valid_on_a_request_refreshes_and_retries_once(
    simplejwt: SimpleJWTServer,
) -> None:
    """SimpleJWT calls an expired access token ``token_not_valid``: on a request that means "refresh and
    retry", so a client whose clock lags still gets through."""
    clock = FrozenClock(time.time())
    manager, http = _simplejwt_manager(simplejwt, clock)
    try:
        first = manager.login(simplejwt.username, simplejwt.password)
        expires = first.access_expires_at
        while time.time() < expires + 1.1:  # expired at the server; the client's clock stands still
            time.sleep(0.1)
        before = simplejwt.stats()["refresh_200"]

        with httpx.Client(base_url=simplejwt.url, auth=KeyturnAuth(manager), timeout=30, verify=TLS) as api:
            me = api.get("/api/me/")

        assert me.status_code == 200
        assert me.json() == {"username": simplejwt.username}
        assert simplejwt.stats()["refresh_200"] == before + 1
    finally:
        http.close()


def test_a_blacklisted_simplejwt_refresh_token_ends_the_session(simplejwt: SimpleJWTServer) -> None:
    """SimpleJWT has no grace period: a refresh token used once is blacklisted, and its ``token_not_valid``
    from the refresh endpoint ends the session (there is nothing else to try)."""
    ended: list[str] = []
    manager, http = _simplejwt_manager(simplejwt, SystemClock(), on_session_ended=ended.append)
    try:
        pair = http.post("/api/token/", json=simplejwt.credentials()).json()
        used = http.post("/api/token/refresh/", json={"refresh": pair["refresh"]})
        assert used.status_code == 200
        manager.set_tokens(pair)
        before = simplejwt.stats()["refresh_401"]

        with pytest.raises(SessionEnded) as gone:
            manager.replace_rejected(pair["access"])

        assert gone.value.reason == "token_not_valid"
        assert ended == ["token_not_valid"]
        assert simplejwt.stats()["refresh_401"] == before + 1
        assert manager.store.load() is None
    finally:
        http.close()
