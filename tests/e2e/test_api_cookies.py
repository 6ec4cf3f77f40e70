"""Cookie mode over real HTTP: the refresh token in an HttpOnly cookie, the CSRF header every cookie call
needs, cookie mode per call on a body-mode server, and the ``__Host-`` prefix.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ._http import TOKEN_KEYS, assert_error, fp, me, why
from ._server import Cluster, cluster


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


# -- the __Host- prefix --------------------------------------------------------------------------------------


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
