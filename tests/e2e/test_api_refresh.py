"""``/auth/me`` and ``/auth/refresh`` over real HTTP: the session a client sees, rotation, the grace
period's replay, two refresh cookies refused, and a reuse after the grace period ending the session.
"""

from __future__ import annotations

import time
from pathlib import Path

from ._api import Api
from ._http import TOKEN_KEYS, assert_error, fp, jwt_parts, login, me, refresh, refreshed, why
from ._server import cluster, run_cli


def test_me_answers_subject_claims_and_session(api: Api) -> None:
    """/auth/me is how a client checks its session: subject, claims and a live, current session."""
    with api.client() as http:
        pair = api.login(http)
        answer = me(http, pair["access_token"])
    assert answer.status_code == 200, why(answer)
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["subject"] == api.subject("alice")
    assert body["claims"]["sid"] == pair["session_id"]
    assert body["claims"]["sub"] == api.subject("alice")
    session = body["session"]
    assert session["session_id"] == pair["session_id"]
    assert session["state"] == "active"
    assert session["current"] is True
    assert session["revoked_reason"] is None
    assert session["ip"] == "127.0.0.1"
    assert session["user_agent"].startswith("python-httpx/")


def test_forwarded_for_headers_are_not_trusted(api: Api) -> None:
    """Any client can send X-Forwarded-For; until a proxy is configured as trusted it is ignored."""
    with api.client() as http:
        answer = http.post(
            "/auth/login",
            json=api.credentials("alice", api.passwords["alice"]),
            headers={"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9"},
        )
        assert answer.status_code == 200, why(answer)
        shown = me(http, answer.json()["access_token"]).json()["session"]
    assert shown["ip"] == "127.0.0.1"


def test_refresh_rotates_and_the_new_access_token_works(api: Api) -> None:
    """A refresh returns a new pair for the same session, with a fresh access token."""
    with api.client() as http:
        pair = api.login(http)
        answer = refresh(http, pair["refresh_token"])
        assert answer.status_code == 200, why(answer)
        assert answer.headers["cache-control"] == "no-store"
        new = answer.json()
        assert set(new) == TOKEN_KEYS
        assert new["session_id"] == pair["session_id"]
        assert fp(new["refresh_token"]) != fp(pair["refresh_token"])
        assert fp(new["access_token"]) != fp(pair["access_token"])
        assert jwt_parts(new["refresh_token"])[1]["gen"] == jwt_parts(pair["refresh_token"])[1]["gen"] + 1
        assert me(http, new["access_token"]).status_code == 200


def test_retry_within_grace_period_gets_the_same_successor(api: Api) -> None:
    """A refresh whose answer was lost is retried with the old token and gets the same new one."""
    with api.client() as http:
        pair = api.login(http)
        first = refreshed(http, pair["refresh_token"])
        again = refreshed(http, pair["refresh_token"])
        assert fp(again["refresh_token"]) == fp(first["refresh_token"])
        assert again["session_id"] == pair["session_id"]
        assert me(http, again["access_token"]).status_code == 200
        # The successor is still the head: it rotates normally.
        assert refresh(http, first["refresh_token"]).status_code == 200


def test_two_refresh_cookies_are_refused(api: Api) -> None:
    """With two refresh cookies (one planted by a sibling subdomain, say) the service uses neither."""
    with api.client() as http:
        pair = api.login(http, "hank")
        cookies = f"keyturn_refresh=planted; keyturn_refresh={pair['refresh_token']}"
        answer = http.post("/auth/refresh", headers={"Cookie": cookies, "X-Keyturn-CSRF": "1"})
        assert_error(answer, 400, "invalid_request")
        assert refresh(http, pair["refresh_token"]).status_code == 200


def test_reuse_after_grace_period_revokes_the_session(tmp_path: Path) -> None:
    """An old refresh token presented after the grace period is a theft signal: the whole family ends."""
    with cluster(tmp_path / "data", 1, {"KEYTURN_GRACE_PERIOD": "1"}) as group:
        with group.server.client() as http:
            pair = login(http, group.username, group.password)
            head = refreshed(http, pair["refresh_token"])
            # Within the grace period the old token replays to the same head; past it, it is a reuse.
            # Presenting it meanwhile is harmless (a replay), so poll with it, boundedly.
            deadline = time.monotonic() + 30
            answer = refresh(http, pair["refresh_token"])
            while answer.status_code == 200 and time.monotonic() < deadline:
                assert fp(answer.json()["refresh_token"]) == fp(head["refresh_token"])
                time.sleep(0.25)
                answer = refresh(http, pair["refresh_token"])
            assert_error(answer, 401, "refresh_token_reused")
            # The user's own, newest token has stopped working too, and so has every access token.
            assert_error(refresh(http, head["refresh_token"]), 401, "session_revoked")
            assert_error(me(http, head["access_token"]), 401, "token_revoked")
            assert_error(me(http, pair["access_token"]), 401, "token_revoked")
            # The stolen token stays refused, now as a revoked session.
            assert_error(refresh(http, pair["refresh_token"]), 401, "session_revoked")
        listed = run_cli(group.data_dir, "sessions", "list", "--user", group.username, "--all")
        assert listed.returncode == 0, listed.stderr
        states = {row.split("\t")[0]: row.split("\t")[2] for row in listed.stdout.splitlines()[1:]}
        assert states[pair["session_id"]] == "revoked (reuse)"
