"""``keyturn.django.urls`` serves the session contract of docs/contract.md as ``keyturn serve`` does.

The example project on ``keyturn.django``, under gunicorn's sync workers (WSGI) and uvicorn (ASGI), on
SQLite and PostgreSQL: the same bodies, codes and headers as the token service's own routes.
"""

from __future__ import annotations

import httpx
import pytest

from .._challenges import BARE
from ..e2e._http import ERROR_KEYS, TOKEN_KEYS
from ._project import ExampleProject


def login(client: httpx.Client, username: str, password: str, **kwargs: object) -> httpx.Response:
    return client.post("/api/auth/login", json={"username": username, "password": password}, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_the_session_contract_in_body_mode(keyturn_project: ExampleProject, server: str) -> None:
    """Login, me, refresh (rotation, then the same answer to a copy), sessions, logout, and the errors."""
    (user,) = keyturn_project.add_users(1)
    with keyturn_project.serve("keyturn", server=server) as url, httpx.Client(base_url=url, timeout=30) as c:
        wrong = login(c, user.username, "not the password")
        assert wrong.status_code == 401
        assert wrong.json() == {
            "error": "invalid_credentials",
            "error_description": "Wrong username or password.",
            "retryable": False,
        }
        assert wrong.headers["WWW-Authenticate"] == 'Bearer realm="keyturn"'

        started = login(c, user.username, user.password)
        assert started.status_code == 200, started.text
        pair = started.json()
        assert set(pair) == TOKEN_KEYS
        assert pair["token_type"] == "Bearer"
        assert started.headers["Cache-Control"] == "no-store"
        bearer = {"Authorization": f"Bearer {pair['access_token']}"}

        for header in ({}, {"Authorization": "Basic YWxpY2U6c2VjcmV0"}):  # no bearer credentials at all
            missing = c.get("/api/auth/me", headers=header)
            assert (missing.status_code, missing.json()["error"]) == (401, "token_invalid")
            # RFC 6750 section 3.1 and RFC 9449 section 7.2: no error, and DPoP is taken too.
            assert missing.headers["WWW-Authenticate"] == BARE
        # Two Authorization headers (gunicorn and uvicorn's Django join them with a comma): 400
        # invalid_request with a challenge naming it (RFC 6750 section 3.1), whichever comes first.
        for two in (
            [("Authorization", bearer["Authorization"]), ("Authorization", "Bearer not-a-token")],
            [("Authorization", "Basic YWxpY2U6c2VjcmV0"), ("Authorization", bearer["Authorization"])],
        ):
            repeated = c.get("/api/auth/me", headers=two)
            assert (repeated.status_code, repeated.json()["error"]) == (400, "invalid_request"), repeated.text
            assert "more than one Authorization header" in repeated.json()["error_description"]
            challenge = repeated.headers["WWW-Authenticate"]
            assert challenge.startswith('Bearer realm="keyturn", error="invalid_request"'), challenge
        for header in ({}, {"Authorization": "Basic YWxpY2U6c2VjcmV0"}):  # no refresh token either way
            listed = c.get("/api/auth/sessions", headers=header)
            assert (listed.status_code, listed.json()["error"]) == (400, "invalid_request"), listed.text
            assert listed.json()["error_description"] == "No refresh token was given."
        broken = c.get("/api/auth/me", headers={"Authorization": "Bearer not-a-token"})
        assert broken.headers["WWW-Authenticate"].startswith('Bearer realm="keyturn", error="invalid_token"')

        me = c.get("/api/auth/me", headers=bearer).json()
        assert me["session"]["session_id"] == pair["session_id"]
        assert me["session"]["current"] is True
        subject = me["subject"]
        assert subject.isdigit()  # the Django user's primary key

        rotated = c.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert rotated.status_code == 200
        new = rotated.json()
        assert new["refresh_token"] != pair["refresh_token"]
        again = c.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}).json()
        assert again["refresh_token"] == new["refresh_token"]  # inside the grace period: byte for byte

        listed = c.get(
            "/api/auth/sessions", headers={"Authorization": f"Bearer {new['refresh_token']}"}
        ).json()
        assert [s["session_id"] for s in listed] == [pair["session_id"]]

        ended = c.post("/api/auth/logout", headers=bearer)
        assert ended.json() == {"revoked_sessions": [pair["session_id"]]}
        assert c.post("/api/auth/logout", headers=bearer).json() == {"revoked_sessions": []}

        refused = c.post("/api/auth/refresh", json={"refresh_token": new["refresh_token"]})
        assert refused.status_code == 401
        assert refused.json()["error"] == "session_revoked"
        assert set(refused.json()) == ERROR_KEYS
        assert refused.headers["WWW-Authenticate"].startswith(
            'Bearer realm="keyturn", error="invalid_token", error_description="session_revoked: '
        )
        assert c.get("/api/auth/me", headers=bearer).json()["error"] == "token_revoked"

        feed = c.get("/api/auth/revocations", params={"since": 0}).json()
        assert {"kind": "sid", "value": pair["session_id"]}.items() <= feed["revocations"][0].items()
        assert c.get("/api/auth/revocations", params={"since": -1}).status_code == 400

        jwks = c.get("/api/auth/.well-known/jwks.json")
        assert jwks.json()["keys"][0]["alg"] == "ES256"
        assert jwks.headers["Cache-Control"] == "private, max-age=300"


def test_errors_outside_the_table_keep_the_one_body(keyturn_project: ExampleProject) -> None:
    """Unknown paths, wrong methods, bodies that are not JSON or too large: ``invalid_request``."""
    with keyturn_project.serve("keyturn") as url, httpx.Client(base_url=url, timeout=30) as c:
        missing = c.get("/api/auth/no-such-route")
        assert (missing.status_code, missing.json()["error"]) == (404, "invalid_request")
        wrong_method = c.get("/api/auth/login")
        assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "invalid_request")
        assert wrong_method.headers["Allow"] == "POST"
        not_get = c.put("/api/auth/me")
        assert (not_get.status_code, not_get.headers["Allow"]) == (405, "GET, HEAD")
        for path in ("/api/auth/.well-known/jwks.json", "/api/auth/revocations", "/api/auth/me"):
            head, get = c.head(path), c.get(path)
            assert (head.status_code, head.content) == (get.status_code, b""), path
            assert head.headers["Cache-Control"] == get.headers["Cache-Control"], path
        form = c.post("/api/auth/login", data={"username": "a", "password": "b"})
        assert (form.status_code, form.json()["error"]) == (400, "invalid_request")
        empty = c.post("/api/auth/refresh")
        assert (empty.status_code, empty.json()["error"]) == (400, "invalid_request")
        huge = c.post(
            "/api/auth/refresh", content=b"x" * (256 * 1024 + 1), headers={"Content-Type": "application/json"}
        )
        assert (huge.status_code, huge.json()["error"]) == (413, "invalid_request")
        forged = c.post("/api/auth/refresh", json={"refresh_token": "a.b.c"})
        assert (forged.status_code, forged.json()["error"]) == (401, "token_invalid")
        assert c.post("/api/auth/revoke", data={"token": "anything"}).json() == {}


def test_cookie_mode(keyturn_project: ExampleProject) -> None:
    """With ``X-Keyturn-CSRF`` the refresh token lives in the cookie, under the routes' own prefix."""
    (user,) = keyturn_project.add_users(1)
    csrf = {"X-Keyturn-CSRF": "1"}
    with keyturn_project.serve("keyturn") as url, httpx.Client(base_url=url, timeout=30) as c:
        started = login(c, user.username, user.password, headers=csrf)
        assert "refresh_token" not in started.json()
        cookie = started.headers["Set-Cookie"]
        for attribute in ("keyturn_refresh=", "HttpOnly", "Secure", "SameSite=Strict", "Path=/api/auth"):
            assert attribute in cookie
        token = started.cookies["keyturn_refresh"]

        no_header = c.post("/api/auth/refresh", headers={"Cookie": f"keyturn_refresh={token}"})
        assert (no_header.status_code, no_header.json()["error"]) == (400, "invalid_request")
        rotated = c.post("/api/auth/refresh", headers={"Cookie": f"keyturn_refresh={token}", **csrf})
        assert rotated.status_code == 200
        assert rotated.cookies["keyturn_refresh"] != token

        cookie = f"keyturn_refresh={rotated.cookies['keyturn_refresh']}"
        ended = c.post("/api/auth/logout", headers={"Cookie": cookie, **csrf})
        assert len(ended.json()["revoked_sessions"]) == 1
        assert 'keyturn_refresh=""' in ended.headers["Set-Cookie"]


def test_the_host_prefix_names_the_refresh_cookie_when_asked_for(keyturn_project: ExampleProject) -> None:
    """``KEYTURN["COOKIE_HOST_PREFIX"]``, as ``keyturn serve``'s setting: the cookie is
    ``__Host-keyturn_refresh`` (Secure, Path=/, no Domain: a sibling subdomain cannot set one), and a plain
    ``keyturn_refresh`` cookie is not read."""
    (user,) = keyturn_project.add_users(1)
    csrf = {"X-Keyturn-CSRF": "1"}
    with (
        keyturn_project.serve("keyturn", extra={"COOKIE_HOST_PREFIX": "on"}) as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        started = login(c, user.username, user.password, headers=csrf)
        assert started.status_code == 200, started.text
        set_cookie = started.headers["Set-Cookie"]
        assert set_cookie.startswith("__Host-keyturn_refresh=")
        attributes = {
            part.strip().partition("=")[0].lower(): part.strip() for part in set_cookie.split(";")[1:]
        }
        assert {"secure", "httponly", "path"} <= set(attributes)
        assert attributes["path"] == "Path=/"
        assert "domain" not in attributes
        token = started.cookies["__Host-keyturn_refresh"]

        planted = c.post("/api/auth/refresh", headers={"Cookie": f"keyturn_refresh={token}", **csrf})
        assert (planted.status_code, planted.json()["error"]) == (400, "invalid_request")
        own = c.post("/api/auth/refresh", headers={"Cookie": f"__Host-keyturn_refresh={token}", **csrf})
        assert own.status_code == 200, own.text
        assert own.headers["Set-Cookie"].startswith("__Host-keyturn_refresh=")

        cookie = f"__Host-keyturn_refresh={own.cookies['__Host-keyturn_refresh']}"
        ended = c.post("/api/auth/logout", headers={"Cookie": cookie, **csrf})
        assert len(ended.json()["revoked_sessions"]) == 1
        cleared = ended.headers["Set-Cookie"]
        assert cleared.startswith('__Host-keyturn_refresh="";')
        assert "Path=/;" in cleared + ";"


def test_sessions_are_managed_with_the_current_refresh_token(keyturn_project: ExampleProject) -> None:
    """As ``keyturn serve`` (docs/contract.md, Credentials by purpose): an access token cannot list or end
    sessions (403 ``insufficient_scope``); a rotated refresh token neither logs out nor revokes its live
    session; two refresh cookies are refused."""
    (user,) = keyturn_project.add_users(1)
    with (
        keyturn_project.serve("keyturn", server="uvicorn") as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        pair = login(c, user.username, user.password).json()
        access = {"Authorization": f"Bearer {pair['access_token']}"}
        for refused in (
            c.get("/api/auth/sessions", headers=access),
            c.delete(f"/api/auth/sessions/{pair['session_id']}", headers=access),
            c.post("/api/auth/logout-all", headers=access),
        ):
            assert (refused.status_code, refused.json()["error"]) == (403, "insufficient_scope")
        head = c.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}).json()
        old = {"refresh_token": pair["refresh_token"]}
        dead = c.post("/api/auth/logout", json=old)
        assert (dead.status_code, dead.json()["error"]) == (401, "token_invalid")
        assert c.post("/api/auth/revoke", data={"token": pair["refresh_token"]}).status_code == 200
        cookies = f"keyturn_refresh=planted; keyturn_refresh={head['refresh_token']}"
        twice = c.post("/api/auth/refresh", headers={"Cookie": cookies, "X-Keyturn-CSRF": "1"})
        assert (twice.status_code, twice.json()["error"]) == (400, "invalid_request")
        listed = c.get("/api/auth/sessions", headers={"Authorization": f"Bearer {head['refresh_token']}"})
        assert listed.status_code == 200, listed.text
        assert [s["session_id"] for s in listed.json()] == [pair["session_id"]]


@pytest.mark.parametrize("route", ["token/", "token/refresh/", "token/verify/", "token/blacklist/"])
def test_simplejwts_routes_answer_options_and_other_methods_as_simplejwt_does(
    keyturn_project: ExampleProject, route: str
) -> None:
    """A drop-in answers what its ``Allow`` names: SimpleJWT's views (DRF's) take OPTIONS as well as POST
    (200, ``Allow: POST, OPTIONS``), and refuse a GET with 405 and that ``Allow``."""
    seen = {}
    for tokens in ("simplejwt", "keyturn"):
        with keyturn_project.serve(tokens) as url, httpx.Client(base_url=url, timeout=30) as c:
            options, get = c.options("/api/" + route), c.get("/api/" + route)
            if options.status_code == 200:
                assert options.json()["name"].startswith("Token ")
            seen[tokens] = (
                options.status_code,
                options.headers.get("Allow"),
                get.status_code,
                get.headers.get("Allow"),
            )
            assert get.json()["detail"] == 'Method "GET" not allowed.'
    assert seen["keyturn"] == seen["simplejwt"] == (200, "POST, OPTIONS", 405, "POST, OPTIONS")
