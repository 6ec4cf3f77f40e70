"""Ending tokens over real HTTP: logout (by access or refresh token, idempotent), logout-all, and RFC 7009
revocation of a refresh token (the session), an access token (that token only) or garbage (nothing).
"""

from __future__ import annotations

import pytest

from ._api import Api
from ._http import assert_error, bearer, me, refresh, refreshed, why


def test_logout_by_access_token_ends_the_session(api: Api) -> None:
    """After logout the refresh token gives session_revoked and the access token token_revoked."""
    with api.client() as http:
        pair = api.login(http)
        answer = http.post("/auth/logout", headers=bearer(pair["access_token"]))
        assert answer.status_code == 200, why(answer)
        assert answer.json() == {"revoked_sessions": [pair["session_id"]]}
        assert answer.headers["cache-control"] == "no-store"
        assert_error(refresh(http, pair["refresh_token"]), 401, "session_revoked")
        assert_error(me(http, pair["access_token"]), 401, "token_revoked")


def test_logout_by_refresh_token_in_body_ends_the_session(api: Api) -> None:
    """A client that only holds its refresh token can still log out."""
    with api.client() as http:
        pair = api.login(http)
        answer = http.post("/auth/logout", json={"refresh_token": pair["refresh_token"]})
        assert answer.status_code == 200, why(answer)
        assert answer.json() == {"revoked_sessions": [pair["session_id"]]}
        assert_error(refresh(http, pair["refresh_token"]), 401, "session_revoked")
        assert_error(me(http, pair["access_token"]), 401, "token_revoked")


def test_logout_twice_is_fine(api: Api) -> None:
    """Logout is idempotent: the second call answers 200 with nothing left to end."""
    with api.client() as http:
        pair = api.login(http)
        first = http.post("/auth/logout", json={"refresh_token": pair["refresh_token"]})
        second = http.post("/auth/logout", json={"refresh_token": pair["refresh_token"]})
        third = http.post("/auth/logout", headers=bearer(pair["access_token"]))
    assert first.json() == {"revoked_sessions": [pair["session_id"]]}
    assert second.status_code == 200, why(second)
    assert second.json() == {"revoked_sessions": []}
    assert third.status_code == 200, why(third)
    assert third.json() == {"revoked_sessions": []}


def test_logout_all_ends_every_session_of_the_user_only(api: Api) -> None:
    """Logout-all ends each of the caller's sessions and nobody else's."""
    with api.client() as http:
        first, second = api.login(http, "erin"), api.login(http, "erin")
        other = api.login(http, "alice")
        answer = http.post("/auth/logout-all", json={"refresh_token": first["refresh_token"]})
        assert answer.status_code == 200, why(answer)
        assert answer.headers["cache-control"] == "no-store"
        assert set(answer.json()["revoked_sessions"]) == {first["session_id"], second["session_id"]}
        for pair in (first, second):
            assert_error(refresh(http, pair["refresh_token"]), 401, "session_revoked")
            assert_error(me(http, pair["access_token"]), 401, "token_revoked")
        assert me(http, other["access_token"]).status_code == 200
        assert refresh(http, other["refresh_token"]).status_code == 200
        # As the bearer credential, too; once everything has ended there is nothing to end.
        third = api.login(http, "erin")
        by_refresh = http.post("/auth/logout-all", headers=bearer(third["refresh_token"]))
        assert by_refresh.json() == {"revoked_sessions": [third["session_id"]]}
        assert_error(
            http.post("/auth/logout-all", json={"refresh_token": third["refresh_token"]}),
            401,
            "session_revoked",
        )


@pytest.mark.parametrize("encoding", ["json", "form"])
def test_revoke_refresh_token_ends_its_session(api: Api, encoding: str) -> None:
    """RFC 7009 revocation of a refresh token ends the whole session, in either body encoding."""
    with api.client() as http:
        pair = api.login(http)
        fields = {"token": pair["refresh_token"], "token_type_hint": "refresh_token"}
        answer = (
            http.post("/auth/revoke", json=fields)
            if encoding == "json"
            else http.post("/auth/revoke", data=fields)
        )
        assert answer.status_code == 200, why(answer)
        assert answer.json() == {}
        assert_error(refresh(http, pair["refresh_token"]), 401, "session_revoked")
        assert_error(me(http, pair["access_token"]), 401, "token_revoked")


@pytest.mark.parametrize("encoding", ["json", "form"])
def test_revoke_access_token_revokes_that_token_only(api: Api, encoding: str) -> None:
    """Revoking an access token makes it token_revoked; the session and its refresh token live on."""
    with api.client() as http:
        pair = api.login(http)
        fields = {"token": pair["access_token"]}
        answer = (
            http.post("/auth/revoke", json=fields)
            if encoding == "json"
            else http.post("/auth/revoke", data=fields)
        )
        assert answer.status_code == 200, why(answer)
        assert_error(me(http, pair["access_token"]), 401, "token_revoked")
        renewed = refreshed(http, pair["refresh_token"])
        assert me(http, renewed["access_token"]).status_code == 200


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "x" * 20_000, "eyJhbGciOiJub25lIn0.e30."])
def test_revoke_of_garbage_answers_200(api: Api, token: str) -> None:
    """RFC 7009: an invalid token is not an error, there is just nothing to revoke."""
    with api.client() as http:
        answer = http.post("/auth/revoke", json={"token": token})
        assert answer.status_code == 200, why(answer)
        assert answer.json() == {}
        form = http.post("/auth/revoke", data={"token": token})
        assert form.status_code == 200, why(form)
