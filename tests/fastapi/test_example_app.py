"""The example app on a real uvicorn: its own users and login fields, Keyturn's sessions, its own routes."""

from __future__ import annotations

from .._unstalled import Unstalled
from ..e2e._http import assert_error, bearer, jwt_parts
from ._example import ExampleApp


def test_login_takes_the_apps_own_fields(example: ExampleApp) -> None:
    """The app decides what a login body holds (email and password here): those log in, nothing else does."""
    email, password = example.add_user()
    with example.client() as http:
        tokens = example.login(http, email, password)
        assert set(tokens) >= {"access_token", "refresh_token", "expires_in", "session_id", "server_time"}
        assert tokens["token_type"] == "Bearer"
        _, claims = jwt_parts(tokens["access_token"])
        assert claims["sub"] == str(example.users.by_email(email).id)  # type: ignore[union-attr]
        assert claims["roles"] == ["reader"]
        wrong = http.post("/auth/login", json={"email": email, "password": password + "x"})
        assert_error(wrong, 401, "invalid_credentials")
        other_fields = http.post("/auth/login", json={"username": email, "password": password})
        assert_error(other_fields, 401, "invalid_credentials")
        assert_error(http.post("/auth/login", content=b"[1]", headers=_json()), 400, "invalid_request")


def test_refresh_rotates_and_a_replay_in_the_grace_period_answers_the_same_token(example: ExampleApp) -> None:
    """The session contract, served by the app: a new pair, then the same refresh token on a retry."""
    email, password = example.add_user()
    with example.client() as http:
        tokens = example.login(http, email, password)
        first = http.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert first.status_code == 200, first.text
        rotated = first.json()
        assert rotated["refresh_token"] != tokens["refresh_token"]
        again = http.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert again.status_code == 200
        assert again.json()["refresh_token"] == rotated["refresh_token"]


def test_a_role_change_reaches_the_next_access_token(example: ExampleApp) -> None:
    """Roles live in the app's table; the claims hook is asked at each refresh, so a promotion shows in
    the next access token and opens the route that needs it."""
    email, password = example.add_user(["reader"])
    with example.client() as http:
        tokens = example.login(http, email, password)
        assert_error(
            http.get("/api/reports", headers=bearer(tokens["access_token"])), 403, "insufficient_scope"
        )
        assert example.users.update(email, roles=["reader", "admin"])
        rotated = http.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()
        assert jwt_parts(rotated["access_token"])[1]["roles"] == ["admin", "reader"]
        reports = http.get("/api/reports", headers=bearer(rotated["access_token"]))
        assert reports.status_code == 200, reports.text


def test_a_disabled_user_is_refused_at_refresh(example: ExampleApp) -> None:
    """The subject check reads the app's table on every refresh: a disabled user's session ends there."""
    email, password = example.add_user()
    with example.client() as http:
        tokens = example.login(http, email, password)
        assert example.users.update(email, disabled=True)
        refused = http.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert_error(refused, 401, "session_revoked")
        assert_error(
            http.post("/auth/login", json={"email": email, "password": password}), 401, "invalid_credentials"
        )


def test_protected_routes_answer_the_documented_codes(example: ExampleApp) -> None:
    """No token, a bad token, a token without the role: 401 token_invalid (with WWW-Authenticate),
    401 token_invalid, 403 insufficient_scope; a good token passes."""
    email, password = example.add_user(["reader"])
    with example.client() as http:
        tokens = example.login(http, email, password)
        missing = assert_error(http.get("/api/profile"), 401, "token_invalid", bare=True)
        assert missing["retryable"] is False
        forged = tokens["access_token"][:-4] + (
            "AAAA" if not tokens["access_token"].endswith("AAAA") else "BBBB"
        )
        assert_error(http.get("/api/profile", headers=bearer(forged)), 401, "token_invalid")
        assert_error(
            http.get("/api/reports", headers=bearer(tokens["access_token"])), 403, "insufficient_scope"
        )
        profile = http.get("/api/profile", headers=bearer(tokens["access_token"]))
        assert profile.status_code == 200
        assert profile.json()["roles"] == ["reader"]


def test_logout_reaches_the_protected_route_within_two_seconds(example: ExampleApp) -> None:
    """The app's verifier reads the revocations of its own store in-process: a logout refuses the
    session's access token on the app's routes within 2 s (REVOCATION_POLL_INTERVAL is 1 s)."""
    email, password = example.add_user()
    with example.client() as http:
        tokens = example.login(http, email, password)
        access = bearer(tokens["access_token"])
        assert http.get("/api/profile", headers=access).status_code == 200
        logout = http.post("/auth/logout", headers=access)
        assert logout.status_code == 200
        assert logout.json() == {"revoked_sessions": [tokens["session_id"]]}
        # 2 s of a running machine: a CI worker at load 9 stalls the app or the test for a second or two,
        # which would cross a bound in seconds; a stall makes a probe (or a pause) overrun and is not counted
        # (see tests/_unstalled.py), while a poller that never reads still runs the count past 2 s, as does
        # one reading less often whenever the logout comes over 2 s before its next read.
        spent = Unstalled()
        while True:
            answer = spent.probe(lambda: http.get("/api/profile", headers=access))
            if answer.status_code != 200:
                break
            assert spent.seconds < 2.0, (
                f"the logout did not reach the protected route in 2 s ({spent.stalled:.1f} s stalled)"
            )
            spent.pause(0.05)
        assert_error(answer, 401, "token_revoked")
        assert spent.seconds < 2.0, f"{spent.seconds:.2f} s ({spent.stalled:.1f} s stalled)"


def test_a_route_of_the_apps_own_starts_a_session(example: ExampleApp) -> None:
    """Sign-up ends in ``auth.start_session``: the token response in body mode, the refresh cookie in
    cookie mode (the client sends the CSRF header), and either refreshes."""
    with example.client() as http:
        body = http.post("/signup", json={"email": "new-user@example.com", "password": "a password"})
        assert body.status_code == 200, body.text
        tokens = body.json()
        assert jwt_parts(tokens["access_token"])[1]["roles"] == ["reader"]
        assert http.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 200
        taken = http.post("/signup", json={"email": "new-user@example.com", "password": "another"})
        assert taken.status_code == 400
    with example.client() as http:
        csrf = {"X-Keyturn-CSRF": "1"}
        cookie = http.post("/signup", json={"email": "cookie@example.com", "password": "pw"}, headers=csrf)
        assert cookie.status_code == 200
        assert "refresh_token" not in cookie.json()
        set_cookie = cookie.headers["set-cookie"]
        assert "keyturn_refresh=" in set_cookie
        assert "HttpOnly" in set_cookie
        assert "Path=/auth" in set_cookie
        # httpx keeps Secure cookies off plain http; the browser would send it back over https.
        refresh_token = set_cookie.split("keyturn_refresh=", 1)[1].split(";", 1)[0]
        rotated = http.post("/auth/refresh", headers={**csrf, "Cookie": f"keyturn_refresh={refresh_token}"})
        assert rotated.status_code == 200, rotated.text
        assert "keyturn_refresh=" in rotated.headers["set-cookie"]


def test_the_apps_own_errors_and_openapi_stay_its_own(example: ExampleApp) -> None:
    """Keyturn's routes answer with Keyturn's error body; the rest of the app keeps FastAPI's, and the
    app's OpenAPI document shows its login fields."""
    with example.client() as http:
        assert http.get("/no-such-page").json() == {"detail": "Not Found"}
        assert http.post("/api/profile").json() == {"detail": "Method Not Allowed"}
        assert_error(http.get("/auth/no-such-call"), 404, "invalid_request")
        assert_error(http.get("/auth/refresh"), 405, "invalid_request")
        assert_error(http.put("/auth/sessions"), 405, "invalid_request")
        assert_error(http.post("/auth/refresh", json={"refresh_token": 5}), 400, "invalid_request")
        assert_error(http.get("/auth/revocations", params={"since": -1}), 400, "invalid_request")
        schema = http.get("/openapi.json").json()
        login = schema["paths"]["/auth/login"]["post"]["requestBody"]["content"]["application/json"]
        assert login["schema"]["required"] == ["email", "password"]
        assert "/auth/refresh" in schema["paths"]


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}
