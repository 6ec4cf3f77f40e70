"""The session endpoints over real HTTP: a user lists and ends their own sessions with the current refresh
token, and cannot end (or learn about) anyone else's, with an access token or a rotated refresh token.
"""

from __future__ import annotations

from ._api import Api
from ._http import assert_error, bearer, me, refresh, refreshed, why


def test_sessions_lists_own_sessions_with_current_flag(api: Api) -> None:
    """A user sees each of their active sessions, marked current for the one asking, and no one else's."""
    with api.client() as http:
        first, second = api.login(http, "carol"), api.login(http, "carol")
        api.login(http, "alice")
        answer = http.get("/auth/sessions", headers=bearer(second["refresh_token"]))
    assert answer.status_code == 200, why(answer)
    assert answer.headers["cache-control"] == "no-store"
    listed = {s["session_id"]: s for s in answer.json()}
    assert set(listed) == {first["session_id"], second["session_id"]}
    assert listed[second["session_id"]]["current"] is True
    assert listed[first["session_id"]]["current"] is False
    for session in listed.values():
        assert session["subject"] == api.subject("carol")
        assert session["state"] == "active"
        assert session["created_at"] <= session["last_seen_at"] < session["absolute_expires_at"]


def test_delete_session_ends_that_one_and_not_others(api: Api) -> None:
    """Ending one session from another device leaves the caller's own session alive."""
    with api.client() as http:
        keep, end = api.login(http, "dave"), api.login(http, "dave")
        answer = http.delete(f"/auth/sessions/{end['session_id']}", headers=bearer(keep["refresh_token"]))
        assert answer.status_code == 200, why(answer)
        assert answer.json() == {"revoked_sessions": [end["session_id"]]}
        assert_error(refresh(http, end["refresh_token"]), 401, "session_revoked")
        assert_error(me(http, end["access_token"]), 401, "token_revoked")
        assert me(http, keep["access_token"]).status_code == 200
        listed = http.get("/auth/sessions", headers=bearer(keep["refresh_token"])).json()
        assert [s["session_id"] for s in listed] == [keep["session_id"]]
        # Ending it again: nothing left to end, still the caller's.
        again = http.delete(f"/auth/sessions/{end['session_id']}", headers=bearer(keep["refresh_token"]))
        assert again.status_code == 200, why(again)
        assert again.json() == {"revoked_sessions": []}


def test_delete_someone_elses_session_is_404_and_ends_nothing(api: Api) -> None:
    """A user cannot end, or learn about, another user's session."""
    with api.client() as http:
        mine = api.login(http, "alice")
        theirs = api.login(http, "bob")
        answer = http.delete(f"/auth/sessions/{theirs['session_id']}", headers=bearer(mine["refresh_token"]))
        assert_error(answer, 404, "invalid_request")
        unknown = http.delete("/auth/sessions/no-such-session", headers=bearer(mine["refresh_token"]))
        assert_error(unknown, 404, "invalid_request")
        assert answer.json() == unknown.json()
        assert me(http, theirs["access_token"]).status_code == 200
        assert refresh(http, theirs["refresh_token"]).status_code == 200


def test_sessions_endpoints_need_a_refresh_token(api: Api) -> None:
    """Without a credential the session endpoints answer 400; with a token that is neither an access nor
    a refresh token of this service, 401 with a challenge."""
    with api.client() as http:
        pair = api.login(http)
        assert_error(http.get("/auth/sessions"), 400, "invalid_request")
        assert_error(http.delete(f"/auth/sessions/{pair['session_id']}"), 400, "invalid_request")
        assert_error(http.get("/auth/sessions", headers=bearer("not.a.token")), 401, "token_invalid")
        assert me(http, pair["access_token"]).status_code == 200


def test_an_access_token_cannot_list_or_end_sessions(api: Api) -> None:
    """Resource servers receive access tokens: one of them (or its thief) must not list the user's
    sessions or log them out everywhere. Those calls take the refresh token; an access token gets 403."""
    with api.client() as http:
        pair, other = api.login(http, "frank"), api.login(http, "frank")
        access = bearer(pair["access_token"])
        assert_error(http.get("/auth/sessions", headers=access), 403, "insufficient_scope")
        ending = http.delete(f"/auth/sessions/{other['session_id']}", headers=access)
        assert_error(ending, 403, "insufficient_scope")
        assert_error(http.post("/auth/logout-all", headers=access), 403, "insufficient_scope")
        for alive in (pair, other):
            assert me(http, alive["access_token"]).status_code == 200
        # The refresh token, as the bearer credential where there is no body, lists them.
        listed = http.get("/auth/sessions", headers=bearer(pair["refresh_token"]))
        assert listed.status_code == 200, why(listed)
        assert {s["session_id"] for s in listed.json()} == {pair["session_id"], other["session_id"]}


def test_a_rotated_refresh_token_ends_no_session(api: Api) -> None:
    """Only the session's current refresh token lists or ends sessions: a rotated copy (a stolen one,
    say) is refused by logout, logout-all and the sessions endpoints, and revokes nothing (RFC 7009)."""
    with api.client() as http:
        pair = api.login(http, "gina")
        head = refreshed(http, pair["refresh_token"])
        old = pair["refresh_token"]
        assert_error(http.post("/auth/logout", json={"refresh_token": old}), 401, "token_invalid")
        assert_error(http.post("/auth/logout-all", json={"refresh_token": old}), 401, "token_invalid")
        assert_error(http.get("/auth/sessions", headers=bearer(old)), 401, "token_invalid")
        revoked = http.post("/auth/revoke", data={"token": old})
        assert revoked.status_code == 200, why(revoked)
        assert revoked.json() == {}
        assert me(http, head["access_token"]).status_code == 200
        assert refresh(http, head["refresh_token"]).status_code == 200
