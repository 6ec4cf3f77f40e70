"""Every endpoint of the token service over real HTTP: the happy path and the documented errors."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from .._secrets import new_password
from ..fastapi._example import running_example
from ._http import (
    TOKEN_KEYS,
    assert_error,
    bearer,
    fp,
    jwt_parts,
    login,
    me,
    refresh,
    refreshed,
    why,
)
from ._server import Cluster, add_user, cluster, run_cli


@dataclass(repr=False)
class Api:
    """The session contract's server: ``keyturn serve``, or Keyturn installed in the example app
    (``examples/fastapi_app``: its own users table, logins by email, numeric subjects)."""

    kind: str
    url: str
    passwords: dict[str, str]
    subjects: dict[str, str]
    name_field: str = "username"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def credentials(self, name: str, password: str) -> dict[str, str]:
        """A login body, in the fields this server's login takes."""
        return {self.name_field: name, "password": password}

    def login(self, http: httpx.Client, name: str = "alice") -> dict[str, Any]:
        response = http.post("/auth/login", json=self.credentials(name, self.passwords[name]))
        assert response.status_code == 200, why(response)
        body: dict[str, Any] = response.json()
        return body

    def subject(self, name: str) -> str:
        return self.subjects[name]

    def serve_only(self, what: str) -> None:
        if self.kind != "serve":
            pytest.skip(f"{what}: keyturn serve's own, not part of what an app embeds")


USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank")


@pytest.fixture(scope="module", params=["serve", "embedded"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One server for the module: alice is shared; each other user belongs to one test."""
    if request.param == "embedded":
        with running_example(tmp_path_factory.mktemp("api-embedded")) as app:
            passwords = {name: new_password() for name in USERS}
            subjects = {name: str(app.users.add(name, passwords[name])) for name in USERS}
            yield Api("embedded", app.url, passwords, subjects, name_field="email")
        return
    with cluster(tmp_path_factory.mktemp("api"), 1, {"KEYTURN_DOCS": "on"}) as group:
        passwords = {group.username: group.password}
        for name in USERS[1:]:
            passwords[name] = add_user(group.data_dir, name)
        yield Api("serve", group.server.url, passwords, {name: name for name in USERS})


# -- login ---------------------------------------------------------------------------------------


def test_login_answers_the_documented_token_response(api: Api) -> None:
    """Clients rely on every field of the token response and on it never being cached."""
    with api.client() as http:
        before = time.time()
        answer = http.post("/auth/login", json=api.credentials("alice", api.passwords["alice"]))
        after = time.time()
    assert answer.status_code == 200, why(answer)
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert set(body) == TOKEN_KEYS
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_in"], int)
    assert 0 < body["expires_in"] <= 900
    assert isinstance(body["refresh_expires_in"], int)
    assert 900 < body["refresh_expires_in"] <= 1_209_600
    assert isinstance(body["server_time"], float)
    # Same host, same clock: the server's time lies between the moments the call left and came back.
    assert before - 1 <= body["server_time"] <= after + 1
    access_header, access_claims = jwt_parts(body["access_token"])
    refresh_header, refresh_claims = jwt_parts(body["refresh_token"])
    assert (access_header["typ"], access_header["alg"]) == ("at+jwt", "ES256")
    assert (refresh_header["typ"], refresh_header["alg"]) == ("rt+jwt", "HS256")
    assert access_claims["sid"] == refresh_claims["sid"] == body["session_id"]
    assert access_claims["sub"] == refresh_claims["sub"] == api.subject("alice")
    assert (access_claims["iss"], access_claims["aud"]) == ("keyturn", "keyturn-api")
    assert access_claims["exp"] - access_claims["iat"] == 900


def test_wrong_password_and_unknown_user_are_indistinguishable(api: Api) -> None:
    """A login failure must not tell whether the name exists: same status, body and challenge."""
    with api.client() as http:
        wrong = http.post("/auth/login", json=api.credentials("alice", "not-the-password"))
        unknown = http.post("/auth/login", json=api.credentials("nobody-here", "whatever"))
    assert_error(wrong, 401, "invalid_credentials")
    assert_error(unknown, 401, "invalid_credentials")
    assert wrong.json() == unknown.json()
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"]
    assert wrong.headers.get("cache-control") == unknown.headers.get("cache-control")


def test_login_is_case_sensitive_about_the_password(api: Api) -> None:
    """A password that differs only in case is a wrong password."""
    password = api.passwords["alice"]
    changed = password.swapcase() if password.swapcase() != password else password + "x"
    with api.client() as http:
        answer = http.post("/auth/login", json=api.credentials("alice", changed))
    assert_error(answer, 401, "invalid_credentials")


# -- me and refresh --------------------------------------------------------------------------------


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


# -- logout ------------------------------------------------------------------------------------------


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


# -- sessions ----------------------------------------------------------------------------------------


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


def test_two_refresh_cookies_are_refused(api: Api) -> None:
    """With two refresh cookies (one planted by a sibling subdomain, say) the service uses neither."""
    with api.client() as http:
        pair = api.login(http, "hank")
        cookies = f"keyturn_refresh=planted; keyturn_refresh={pair['refresh_token']}"
        answer = http.post("/auth/refresh", headers={"Cookie": cookies, "X-Keyturn-CSRF": "1"})
        assert_error(answer, 400, "invalid_request")
        assert refresh(http, pair["refresh_token"]).status_code == 200


# -- revoke ------------------------------------------------------------------------------------------


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


# -- reuse after the grace period ----------------------------------------------------------------------


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


# -- meta --------------------------------------------------------------------------------------------

PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def test_jwks_publishes_public_keys_only_with_cache_control(api: Api) -> None:
    """Resource servers cache the JWKS and verify access tokens with it; it never carries a secret."""
    with api.client() as http:
        answer = http.get("/.well-known/jwks.json")
        pair = api.login(http)
    assert answer.status_code == 200
    cache = answer.headers["cache-control"]
    assert "max-age=" in cache
    assert "no-store" not in cache
    keys = answer.json()["keys"]
    assert keys
    for key in keys:
        assert not PRIVATE_JWK_MEMBERS & set(key), sorted(key)
        assert key["use"] == "sig"
        assert key["kty"] in {"EC", "OKP", "RSA"}
        assert key["kid"]
        assert key["alg"] != "HS256"
    # A resource server with nothing but the JWKS verifies an access token.
    kid = jwt_parts(pair["access_token"])[0]["kid"]
    (jwk,) = [k for k in keys if k["kid"] == kid]
    claims = jwt.decode(
        pair["access_token"],
        jwt.PyJWK(jwk).key,
        algorithms=[jwk["alg"]],
        audience="keyturn-api",
        issuer="keyturn",
    )
    assert claims["sid"] == pair["session_id"]
    # The refresh key is server-only.
    refresh_kid = jwt_parts(pair["refresh_token"])[0]["kid"]
    assert refresh_kid not in {k["kid"] for k in keys}


def test_health_and_readiness_answer(api: Api) -> None:
    """Orchestrators probe /healthz and /readyz."""
    api.serve_only("/healthz and /readyz")
    with api.client() as http:
        health = http.get("/healthz")
        ready = http.get("/readyz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


def test_docs_and_openapi_are_served(api: Api) -> None:
    """The API documents itself: /docs renders and /openapi.json lists every endpoint."""
    api.serve_only("the service's own OpenAPI document")
    with api.client() as http:
        docs = http.get("/docs")
        schema = http.get("/openapi.json")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "openapi.json" in docs.text
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in (
        "/auth/login",
        "/auth/refresh",
        "/auth/me",
        "/auth/logout",
        "/auth/logout-all",
        "/auth/sessions",
        "/auth/sessions/{session_id}",
        "/auth/revoke",
        "/.well-known/jwks.json",
        "/healthz",
        "/readyz",
        "/oauth/token",
        "/oauth/revoke",
        "/oauth/introspect",
        "/.well-known/oauth-authorization-server",
    ):
        assert path in paths


def test_docs_metrics_and_demo_can_be_turned_off(tmp_path: Path) -> None:
    """Production switches: /docs (Swagger UI, whose scripts come from a CDN) is off unless
    ``KEYTURN_DOCS=on``; ``KEYTURN_METRICS=off`` and ``KEYTURN_DEMO=off`` take /metrics and /demo/ away.
    /openapi.json, plain data, stays."""
    with cluster(tmp_path / "on", 1) as group, group.server.client() as http:
        assert_error(http.get("/docs"), 404, "invalid_request")
        assert http.get("/openapi.json").status_code == 200
        assert http.get("/metrics").status_code == 200
        assert http.get("/demo/").status_code == 200
    off = {"KEYTURN_METRICS": "off", "KEYTURN_DEMO": "off"}
    with cluster(tmp_path / "off", 1, off) as group, group.server.client() as http:
        assert_error(http.get("/metrics"), 404, "invalid_request")
        assert_error(http.get("/demo/"), 404, "invalid_request")
        assert http.get("/healthz").status_code == 200


def test_openapi_says_what_the_service_answers(api: Api) -> None:
    """The served document: no 422 (a malformed call is a 400 with the one error body), the bearer scheme
    on the calls that need an access token, the bodies FastAPI cannot see, cookie mode's cookie and
    header, and the 503 of the routes that read the store."""
    api.serve_only("the service's own OpenAPI document (an app's has its own routes' 422s)")
    with api.client() as http:
        schema = http.get("/openapi.json").json()
    operations = {(m.upper(), p): op for p, ops in schema["paths"].items() for m, op in ops.items()}
    assert all("422" not in op["responses"] for op in operations.values())
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert operations[("GET", "/auth/me")]["security"] == [{"bearer": []}]
    assert operations[("POST", "/auth/logout")]["security"] == [{"bearer": []}, {}]  # or the refresh token
    managing = (
        ("GET", "/auth/sessions"),
        ("DELETE", "/auth/sessions/{session_id}"),
        ("POST", "/auth/logout-all"),
    )
    for key in managing:  # the refresh token as the bearer credential, or in the body or the cookie
        assert operations[key]["security"] == [{"refresh": []}, {}], key
        assert "403" in operations[key]["responses"], key
    assert schema["components"]["securitySchemes"]["refresh"]["scheme"] == "bearer"
    for key in (("POST", "/auth/refresh"), ("POST", "/auth/logout"), ("POST", "/auth/logout-all")):
        names = {(p["in"], p["name"]) for p in operations[key].get("parameters", [])}
        dpop = {("header", "DPoP")} if key == ("POST", "/auth/refresh") else set()  # RFC 9449 proofs
        assert names == {("cookie", "keyturn_refresh"), ("header", "X-Keyturn-CSRF")} | dpop, key
    refresh_body = operations[("POST", "/auth/refresh")]["requestBody"]["content"]["application/json"]
    assert set(refresh_body["schema"]["properties"]) == {"refresh_token"}
    revoke_body = operations[("POST", "/auth/revoke")]["requestBody"]["content"]
    assert set(revoke_body) == {"application/x-www-form-urlencoded", "application/json"}
    assert revoke_body["application/json"]["schema"]["required"] == ["token"]
    for key in (("GET", "/.well-known/jwks.json"), ("GET", "/readyz")):
        assert "503" in operations[key]["responses"], key


# -- cookie mode ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cookie_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A server in browser mode: the refresh token travels only in an HttpOnly cookie."""
    with cluster(tmp_path_factory.mktemp("cookie"), 1, None, "--cookie-mode") as group:
        yield group


def refresh_cookie(response: httpx.Response) -> tuple[str, dict[str, str]]:
    """The refresh cookie's value and its attributes (names lower-cased) from ``Set-Cookie``."""
    (header,) = [h for h in response.headers.get_list("set-cookie") if h.startswith("keyturn_refresh=")]
    first, *attributes = (part.strip() for part in header.split(";"))
    value = first.split("=", 1)[1]
    parsed = {}
    for attribute in attributes:
        name, _, setting = attribute.partition("=")
        parsed[name.lower()] = setting
    return value, parsed


def cookie_login(group: Cluster, http: httpx.Client) -> tuple[httpx.Response, str]:
    answer = http.post("/auth/login", json={"username": group.username, "password": group.password})
    assert answer.status_code == 200, why(answer)
    return answer, refresh_cookie(answer)[0]


def test_cookie_mode_login_sets_a_strict_httponly_cookie(cookie_server: Cluster) -> None:
    """In browser mode the refresh token is out of reach of scripts and out of the body."""
    with cookie_server.server.client() as http:
        answer, _ = cookie_login(cookie_server, http)
    body = answer.json()
    assert "refresh_token" not in body
    assert set(body) == TOKEN_KEYS - {"refresh_token"}
    _, attributes = refresh_cookie(answer)
    assert "httponly" in attributes
    assert "secure" in attributes
    assert attributes["samesite"].lower() == "strict"
    assert attributes["path"] == "/auth"
    assert int(attributes["max-age"]) == body["refresh_expires_in"]


def test_cookie_refresh_without_csrf_header_is_invalid_request(cookie_server: Cluster) -> None:
    """A cookie alone is what a cross-site request carries; without the custom header it is refused."""
    with cookie_server.server.client() as http:
        login_answer, cookie = cookie_login(cookie_server, http)
        answer = http.post("/auth/refresh", headers={"Cookie": f"keyturn_refresh={cookie}"})
        assert_error(answer, 400, "invalid_request")
        # Nothing was rotated: the store still has the session at its first head.
        assert stored_generation(cookie_server, login_answer.json()["session_id"]) == 0
        ok = http.post(
            "/auth/refresh", headers={"Cookie": f"keyturn_refresh={cookie}", "x-keyturn-csrf": "1"}
        )
        assert ok.status_code == 200, why(ok)
        assert stored_generation(cookie_server, login_answer.json()["session_id"]) == 1


def stored_generation(group: Cluster, sid: str) -> int:
    """The session's generation as the store has it (the cookie server runs on the SQLite default)."""
    with contextlib.closing(sqlite3.connect(group.data_dir / "keyturn.db")) as db:
        row = db.execute("SELECT gen FROM sessions WHERE sid = ?", (sid,)).fetchone()
    assert row is not None
    return int(row[0])


def test_cookie_refresh_with_csrf_header_rotates_the_cookie(cookie_server: Cluster) -> None:
    """With the custom header the cookie refreshes and comes back rotated, still out of the body."""
    with cookie_server.server.client() as http:
        _, cookie = cookie_login(cookie_server, http)
        headers = {"Cookie": f"keyturn_refresh={cookie}", "x-keyturn-csrf": "1"}
        answer = http.post("/auth/refresh", headers=headers)
        assert answer.status_code == 200, why(answer)
        assert "refresh_token" not in answer.json()
        new_cookie, attributes = refresh_cookie(answer)
        assert fp(new_cookie) != fp(cookie)
        assert {"httponly", "secure"} <= set(attributes)
        assert me(http, answer.json()["access_token"]).status_code == 200
        # Logging out with the cookie ends the session and clears the cookie.
        out = http.post(
            "/auth/logout", headers={"Cookie": f"keyturn_refresh={new_cookie}", "x-keyturn-csrf": "1"}
        )
        assert out.status_code == 200, why(out)
        assert out.json() == {"revoked_sessions": [answer.json()["session_id"]]}
        cleared, cleared_attributes = refresh_cookie(out)
        assert cleared in {"", '""'}
        assert cleared_attributes.get("max-age") == "0"
        again = http.post(
            "/auth/refresh", headers={"Cookie": f"keyturn_refresh={new_cookie}", "x-keyturn-csrf": "1"}
        )
        assert_error(again, 401, "session_revoked")


def test_cookie_logout_without_csrf_header_is_refused_and_ends_nothing(cookie_server: Cluster) -> None:
    """Logout and logout-all by cookie need the custom header too, or a cross-site form could log one out."""
    with cookie_server.server.client() as http:
        answer, cookie = cookie_login(cookie_server, http)
        for path in ("/auth/logout", "/auth/logout-all"):
            refused = http.post(path, headers={"Cookie": f"keyturn_refresh={cookie}"})
            assert_error(refused, 400, "invalid_request")
        assert me(http, answer.json()["access_token"]).status_code == 200
        assert stored_generation(cookie_server, answer.json()["session_id"]) == 0


def test_cookie_mode_refresh_without_cookie_or_body_is_invalid_request(cookie_server: Cluster) -> None:
    """No cookie and no body token: the call is malformed, not an auth failure."""
    with cookie_server.server.client() as http:
        assert_error(http.post("/auth/refresh", headers={"x-keyturn-csrf": "1"}), 400, "invalid_request")


# -- cookie mode per call (COOKIE_MODE off) --------------------------------------------------------------


def test_a_call_with_the_csrf_header_gets_cookie_mode_from_a_body_mode_server(one_server: Cluster) -> None:
    """A browser client in cookie mode sends ``X-Keyturn-CSRF`` on every call: the server answers it in
    cookie mode although ``COOKIE_MODE`` is off, while other clients keep the refresh token in the body."""
    with one_server.server.client() as http:
        body_mode = http.post(
            "/auth/login", json={"username": one_server.username, "password": one_server.password}
        )
        assert "refresh_token" in body_mode.json()
        assert not [h for h in body_mode.headers.get_list("set-cookie") if h.startswith("keyturn_refresh=")]

        browser = {"x-keyturn-csrf": "1"}
        login_answer = http.post(
            "/auth/login",
            json={"username": one_server.username, "password": one_server.password},
            headers=browser,
        )
        assert login_answer.status_code == 200, why(login_answer)
        assert "refresh_token" not in login_answer.json()
        cookie, attributes = refresh_cookie(login_answer)
        assert {"httponly", "secure"} <= set(attributes)

        refused = http.post("/auth/refresh", headers={"Cookie": f"keyturn_refresh={cookie}"})
        assert_error(refused, 400, "invalid_request")  # the cookie alone, as a cross-site form would send it
        refreshed = http.post("/auth/refresh", headers={"Cookie": f"keyturn_refresh={cookie}", **browser})
        assert refreshed.status_code == 200, why(refreshed)
        assert "refresh_token" not in refreshed.json()
        new_cookie, _ = refresh_cookie(refreshed)
        assert fp(new_cookie) != fp(cookie)

        out = http.post("/auth/logout", headers={"Cookie": f"keyturn_refresh={new_cookie}", **browser})
        assert out.status_code == 200, why(out)
        assert refresh_cookie(out)[1].get("max-age") == "0"


def test_a_data_directory_others_can_enter_is_warned_about(tmp_path: Path) -> None:
    """An existing data directory of mode 0755 holds the master secret and the SQLite file: the server
    starts, and says so in its log; a 0700 one is not warned about."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    with cluster(data, 1) as group, group.server.client() as http:
        assert http.get("/healthz").status_code == 200
        log = group.server.log.read_text()
    assert "open to other users (mode 755)" in log
    with cluster(tmp_path / "private", 1) as group, group.server.client() as http:
        assert http.get("/healthz").status_code == 200
        assert "open to other users" not in group.server.log.read_text()


def test_usernames_that_only_look_alike_are_one_name(tmp_path: Path) -> None:
    """Usernames are normalised (NFKC, case folded): a fullwidth or upper-case spelling of an existing
    user cannot be added, and logs in as that user; a user stored before names were normalised (with
    capitals) still logs in, as it was typed then."""
    with cluster(tmp_path / "data", 1) as group:
        lookalike = run_cli(group.data_dir, "users", "add", "\uff21LICE", "--password-stdin", stdin="x" * 16)
        assert lookalike.returncode != 0, lookalike.stdout
        assert "already exists" in lookalike.stderr
        bob = new_password()
        added = run_cli(group.data_dir, "users", "add", "BOB", "--password-stdin", stdin=bob + "\n")
        assert added.returncode == 0, added.stderr
        with contextlib.closing(sqlite3.connect(group.data_dir / "keyturn.db")) as db, db:
            db.execute("UPDATE users SET username = 'Alice' WHERE username = 'alice'")  # stored long ago
        with group.server.client() as http:
            for typed in ("bob", "Bob", "\uff42\uff4f\uff42"):
                assert jwt_parts(login(http, typed, bob)["access_token"])[1]["sub"] == "bob", typed
            assert jwt_parts(login(http, "Alice", group.password)["access_token"])[1]["sub"] == "Alice"


def test_a_lookalike_that_mixes_scripts_cannot_be_added_and_a_name_in_one_script_can(tmp_path: Path) -> None:
    """``alice`` with a Cyrillic U+0430 for its ``a`` survives normalisation as another name: it is refused
    as a mixed-script name; a name written all in Cyrillic is added and logs in."""
    with cluster(tmp_path / "data", 1) as group:
        lookalike = run_cli(group.data_dir, "users", "add", "\u0430lice", "--password-stdin", stdin="x" * 16)
        assert lookalike.returncode != 0, lookalike.stdout
        assert "Cyrillic and Latin" in lookalike.stderr
        cyrillic, password = "\u0430\u043b\u0438\u0441\u0430", new_password()
        added = run_cli(group.data_dir, "users", "add", cyrillic, "--password-stdin", stdin=password + "\n")
        assert added.returncode == 0, added.stderr
        listed = run_cli(group.data_dir, "users", "list").stdout
        assert "\u0430lice" not in listed
        with group.server.client() as http:
            assert jwt_parts(login(http, cyrillic, password)["access_token"])[1]["sub"] == cyrillic


def test_the_host_prefix_names_the_refresh_cookie_when_asked_for(tmp_path: Path) -> None:
    """With ``COOKIE_HOST_PREFIX`` the cookie is ``__Host-keyturn_refresh`` (Secure, Path=/, no Domain: a
    sibling subdomain cannot set one), and a plain ``keyturn_refresh`` cookie is not read."""
    env = {"KEYTURN_COOKIE_MODE": "on", "KEYTURN_COOKIE_HOST_PREFIX": "on"}
    with cluster(tmp_path / "data", 1, env) as group, group.server.client() as http:
        answer = http.post("/auth/login", json={"username": group.username, "password": group.password})
        assert answer.status_code == 200, why(answer)
        set_cookie = answer.headers["set-cookie"]
        assert set_cookie.startswith("__Host-keyturn_refresh=")
        attributes = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")[1:]}
        assert {"secure", "httponly", "path"} <= attributes
        assert "domain" not in attributes
        assert "Path=/;" in set_cookie or set_cookie.rstrip().endswith("Path=/")
        token = set_cookie.split(";")[0].partition("=")[2]
        csrf = {"X-Keyturn-CSRF": "1"}
        planted = http.post("/auth/refresh", headers={**csrf, "Cookie": f"keyturn_refresh={token}"})
        assert_error(planted, 400, "invalid_request")
        own = http.post("/auth/refresh", headers={**csrf, "Cookie": f"__Host-keyturn_refresh={token}"})
        assert own.status_code == 200, why(own)
        assert own.headers["set-cookie"].startswith("__Host-keyturn_refresh=")
