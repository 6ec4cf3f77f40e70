"""The SimpleJWT reference server (``apps/simplejwt_server.py``) behaves as SimpleJWT does.

Rotation with blacklisting: every refresh answers a new pair and the used refresh token is refused from
then on (no grace period); access tokens expire after ``--access-lifetime``; the server counts how it
answered refresh calls.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ._http import bearer, fp, jwt_parts
from ._simplejwt import SimpleJWTServer, simplejwt_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleJWTServer]:
    with simplejwt_server(tmp_path_factory.mktemp("simplejwt")) as started:
        yield started


def status(response: httpx.Response) -> str:
    """Status and SimpleJWT's error code, never a token."""
    try:
        body = response.json()
    except ValueError:
        return f"status {response.status_code} (not JSON)"
    code = body.get("code") if isinstance(body, dict) and "access" not in body else None
    return f"status {response.status_code} {code}"


def obtain(http: httpx.Client, server: SimpleJWTServer) -> dict[str, Any]:
    answer = http.post("/api/token/", json=server.credentials())
    assert answer.status_code == 200, status(answer)
    pair: dict[str, Any] = answer.json()
    assert set(pair) == {"access", "refresh"}
    return pair


def refresh(http: httpx.Client, refresh_token: str) -> httpx.Response:
    return http.post("/api/token/refresh/", json={"refresh": refresh_token})


def assert_token_not_valid(response: httpx.Response) -> None:
    assert (response.status_code, response.json().get("code")) == (401, "token_not_valid"), status(response)


def test_refresh_rotates_and_blacklists_the_used_token(server: SimpleJWTServer) -> None:
    with server.client() as http:
        before = server.stats()
        pair = obtain(http, server)
        answer = refresh(http, pair["refresh"])
        assert answer.status_code == 200, status(answer)
        new = answer.json()
        assert set(new) == {"access", "refresh"}
        assert fp(new["refresh"]) != fp(pair["refresh"])
        assert fp(new["access"]) != fp(pair["access"])

        assert_token_not_valid(refresh(http, pair["refresh"]))  # blacklisted: no grace period
        assert refresh(http, new["refresh"]).status_code == 200  # the new one rotates in turn

        after = server.stats()
    assert after["refresh_200"] - before["refresh_200"] == 2
    assert after["refresh_401"] - before["refresh_401"] == 1
    assert after["refresh_other"] == before["refresh_other"]


def test_me_needs_a_valid_access_token(server: SimpleJWTServer) -> None:
    with server.client() as http:
        pair = obtain(http, server)
        answer = http.get("/api/me/", headers=bearer(pair["access"]))
        assert answer.status_code == 200, status(answer)
        assert answer.json() == {"username": server.username}

        assert http.get("/api/me/").status_code == 401
        assert_token_not_valid(http.get("/api/me/", headers=bearer(pair["refresh"])))  # wrong type
        wrong = http.post("/api/token/", json={"username": server.username, "password": "not-it"})
        assert wrong.status_code == 401, status(wrong)


def test_access_tokens_expire_after_the_access_lifetime(tmp_path: Path) -> None:
    # 5 s, not 1: ``exp`` and ``iat`` are whole seconds, and ``exp`` is counted from the refresh token's
    # making, ``iat`` from the access token's, later in the same request: on a busy machine (a CI worker
    # stalled over a second between the two once, giving 1 for a 3 s token) the token lives a little less.
    with simplejwt_server(tmp_path, access_lifetime=5) as server, server.client() as http:
        pair = obtain(http, server)
        claims = jwt_parts(pair["access"])[1]
        assert 1 <= claims["exp"] - claims["iat"] <= 5
        assert http.get("/api/me/", headers=bearer(pair["access"])).status_code == 200

        time.sleep(max(0.0, claims["exp"] + 1.5 - time.time()))
        assert_token_not_valid(http.get("/api/me/", headers=bearer(pair["access"])))
        answer = refresh(http, pair["refresh"])  # the refresh token outlives it
        assert answer.status_code == 200, status(answer)
        assert http.get("/api/me/", headers=bearer(answer.json()["access"])).status_code == 200
        assert server.stats() == {"refresh_200": 1, "refresh_401": 0, "refresh_other": 0}


def test_a_restart_on_the_same_directory_keeps_tokens_and_the_blacklist(tmp_path: Path) -> None:
    with simplejwt_server(tmp_path) as first, first.client() as http:
        pair = obtain(http, first)
        answer = refresh(http, pair["refresh"])
        assert answer.status_code == 200, status(answer)
        current = answer.json()["refresh"]

    with simplejwt_server(tmp_path) as second, second.client() as http:
        assert second.stats() == {"refresh_200": 0, "refresh_401": 0, "refresh_other": 0}
        assert_token_not_valid(refresh(http, pair["refresh"]))
        assert refresh(http, current).status_code == 200
