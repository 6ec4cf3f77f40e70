"""SimpleJWT's routes and ``KeyturnAuthentication`` answer as djangorestframework-simplejwt did, side by side.

The same requests go to the example project on SimpleJWT's own views (``TOKENS=simplejwt``) and on
``keyturn.django``; the answers must match but for Keyturn's own keys beside SimpleJWT's (``error``,
``error_description``, ``retryable``), as docs/django.md says. Found by an outside-in audit of the docs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from ._project import ExampleProject
from .conftest import database_url

KEYTURN_KEYS = ("error", "error_description", "retryable")
HEADER_TYPES = {
    "DJANGO_SETTINGS_MODULE": "_header_types_settings",
    "PYTHONPATH": str(Path(__file__).resolve().parent),  # the settings module; the harness adds src
}


@pytest.fixture
def sqlite_project(tmp_path: Path) -> Iterator[ExampleProject]:
    """The example project on SQLite, migrated with both token services' tables."""
    with database_url("sqlite", tmp_path) as url:
        project = ExampleProject(tmp_path, url)
        project.manage("migrate")
        yield project


def simplejwts_part(answer: httpx.Response) -> tuple[int, object]:
    """The status and the body without Keyturn's keys: what a SimpleJWT frontend reads."""
    body = answer.json()
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in KEYTURN_KEYS}
    return answer.status_code, body


def side_by_side(
    project: ExampleProject, probe: Callable[[httpx.Client], list[httpx.Response]], **serve: object
) -> dict[str, list[tuple[int, object]]]:
    seen = {}
    for tokens in ("simplejwt", "keyturn"):
        with project.serve(tokens, **serve) as url, httpx.Client(base_url=url, timeout=30) as c:  # type: ignore[arg-type]
            seen[tokens] = [simplejwts_part(answer) for answer in probe(c)]
    return seen


def test_bodies_are_read_as_drfs_parsers_and_char_fields_read_them(sqlite_project: ExampleProject) -> None:
    """A body that is neither JSON nor a form is 415; a null field is "may not be null"; whitespace around
    a username, a password or a token is trimmed (DRF's ``CharField``), so a frontend (or a phone's
    keyboard) that adds a space logs in and refreshes as it did. Before: 200 for a text/plain body, 401
    for " name ", "This field is required." for null."""
    (user,) = sqlite_project.add_users(1)
    padded = {"username": f" {user.username} ", "password": f"{user.password}  "}
    as_text = {"Content-Type": "text/plain"}

    def probe(c: httpx.Client) -> list[httpx.Response]:
        login = c.post("/api/token/", json=padded)
        assert login.status_code == 200, login.text
        refresh = " " + login.json()["refresh"] + "\n"
        refreshed = c.post("/api/token/refresh/", json={"refresh": refresh})
        assert refreshed.status_code == 200, refreshed.text
        return [
            c.post("/api/token/", content=f'{{"username": "{user.username}"}}', headers=as_text),
            c.post("/api/token/", content=b'{"username": "x"}', headers={"Content-Type": ""}),
            c.post("/api/token/refresh/", content=b'{"refresh": "x"}', headers=as_text),
            c.post("/api/token/", json={"username": user.username, "password": None}),
            c.post("/api/token/", json={"username": user.username, "password": "   "}),
            c.post("/api/token/verify/", data={"token": "  "}),
        ]

    seen = side_by_side(sqlite_project, probe)
    assert seen["keyturn"] == seen["simplejwt"]
    assert [status for status, _ in seen["keyturn"]] == [415, 415, 415, 400, 400, 400]


def test_verify_refuses_a_rotated_refresh_token_and_a_revoked_access_token(
    sqlite_project: ExampleProject,
) -> None:
    """``token/verify/`` of a refresh token that has been rotated is 400 "Token is blacklisted", as SimpleJWT
    (``BLACKLIST_AFTER_ROTATION``) answers it: a frontend that verifies before refreshing must not be told
    that a token whose refresh would revoke the session is good (before: 200 ``{}``). An access token of a
    revoked session is the 400 docs/django.md promises (before: 401 ``token_not_valid``)."""
    (user,) = sqlite_project.add_users(1)

    def probe(c: httpx.Client) -> list[httpx.Response]:
        pair = c.post("/api/token/", json=user.credentials()).json()
        new = c.post("/api/token/refresh/", json={"refresh": pair["refresh"]}).json()
        answers = [
            c.post("/api/token/verify/", json={"token": pair["refresh"]}),
            c.post("/api/token/verify/", json={"token": new["refresh"]}),
        ]
        assert c.post("/api/token/blacklist/", json={"refresh": new["refresh"]}).status_code == 200
        answers.append(c.post("/api/token/verify/", json={"token": new["refresh"]}))
        return answers

    seen = side_by_side(sqlite_project, probe)
    blacklisted = (400, {"non_field_errors": ["Token is blacklisted"]})
    assert seen["keyturn"] == seen["simplejwt"] == [blacklisted, (200, {}), blacklisted]

    with sqlite_project.serve("keyturn") as url, httpx.Client(base_url=url, timeout=30) as c:
        pair = c.post("/api/token/", json=user.credentials()).json()
        rotated = c.post("/api/token/refresh/", json={"refresh": pair["refresh"]})
        assert rotated.status_code == 200  # verify did not spend or revoke anything: the head still rotates
        old = c.post("/api/token/verify/", json={"token": pair["refresh"]})
        assert old.json()["error"] == "refresh_token_reused"
        assert c.post("/api/token/blacklist/", json={"refresh": rotated.json()["refresh"]}).status_code == 200
        revoked = c.post("/api/token/verify/", json={"token": pair["access"]})
        assert revoked.status_code == 400, revoked.text
        assert revoked.json() == {"non_field_errors": ["Token is blacklisted"], "error": "token_revoked"}


@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_api_refusals_keep_simplejwts_body_and_its_header_types(
    sqlite_project: ExampleProject, server: str
) -> None:
    """``KeyturnAuthentication`` in the project answers a bad token with JWTAuthentication's body
    (``code: token_not_valid``, on which SimpleJWT frontends refresh) with Keyturn's code beside it, takes
    the schemes of ``SIMPLE_JWT["AUTH_HEADER_TYPES"]`` (``JWT <token>``), and puts SimpleJWT's user id
    claim in the access token as the installed SimpleJWT does. Before: Keyturn's body alone, and a
    ``JWT`` header was "credentials were not provided"."""
    (user,) = sqlite_project.add_users(1)
    user_ids = []

    def probe(c: httpx.Client) -> list[httpx.Response]:
        pair = c.post("/api/token/", json=user.credentials()).json()
        user_ids.append(jwt.decode(pair["access"], options={"verify_signature": False})["user_id"])
        return [
            c.get("/api/me/", headers={"Authorization": f"JWT {pair['access']}"}),
            c.get("/api/me/", headers={"Authorization": f"Bearer {pair['access']}"}),
            c.get("/api/me/", headers={"Authorization": "JWT not-a-token"}),
            c.get("/api/me/", headers={"Authorization": f"Bearer {pair['refresh']}x"}),
            c.get("/api/me/", headers={"Authorization": "Token abc"}),
        ]

    seen = side_by_side(sqlite_project, probe, extra=HEADER_TYPES, server=server)
    me = (200, {"id": 1, "username": user.username, "email": user.email})
    message = {"token_class": "AccessToken", "token_type": "access", "message": "Token is invalid"}
    not_valid = (
        401,
        {
            "detail": "Given token not valid for any token type",
            "code": "token_not_valid",
            "messages": [message],
        },
    )
    not_given = (401, {"detail": "Authentication credentials were not provided."})
    assert seen["keyturn"] == seen["simplejwt"] == [me, me, not_valid, not_valid, not_given]
    assert user_ids[0] == user_ids[1]

    with sqlite_project.serve("keyturn") as url, httpx.Client(base_url=url, timeout=30) as c:
        refused = c.get("/api/me/", headers={"Authorization": "Bearer not-a-token"})
        assert refused.json()["error"] == "token_invalid"
        assert refused.json()["code"] == "token_not_valid"


def test_a_blacklisted_simplejwt_token_is_refused_as_simplejwt_refuses_it(
    sqlite_project: ExampleProject,
) -> None:
    """A SimpleJWT refresh token blacklisted before the switch (through SimpleJWT's own route) or after it
    (through Keyturn's) is refused at ``token/refresh/`` with SimpleJWT's "Token is blacklisted", not
    "Token is invalid" (before: ``token_invalid``)."""
    (user,) = sqlite_project.add_users(1)
    with sqlite_project.serve("simplejwt") as url, httpx.Client(base_url=url, timeout=30) as c:
        before, after = (c.post("/api/token/", json=user.credentials()).json() for _ in range(2))
        assert c.post("/api/token/blacklist/", json={"refresh": before["refresh"]}).status_code == 200
        simplejwts = simplejwts_part(c.post("/api/token/refresh/", json={"refresh": before["refresh"]}))
    assert simplejwts == (401, {"detail": "Token is blacklisted", "code": "token_not_valid"})
    with sqlite_project.serve("keyturn") as url, httpx.Client(base_url=url, timeout=30) as c:
        assert c.post("/api/token/blacklist/", json={"refresh": after["refresh"]}).status_code == 200
        for pair in (before, after):
            refused = c.post("/api/token/refresh/", json={"refresh": pair["refresh"]})
            assert simplejwts_part(refused) == simplejwts
            assert refused.json()["error"] == "session_revoked"


def test_an_expired_access_token_is_refused_with_simplejwts_expiry_message(
    sqlite_project: ExampleProject,
) -> None:
    """An access token past its ``exp`` (one-second lifetimes, no leeway on either side) is refused at the
    API as ``JWTAuthentication`` refused it: ``token_not_valid`` with the message "Token is expired", on
    which a frontend refreshes; Keyturn's ``token_expired`` beside it."""
    (user,) = sqlite_project.add_users(1)
    expired_codes = []

    def probe(c: httpx.Client) -> list[httpx.Response]:
        access = c.post("/api/token/", json=user.credentials()).json()["access"]
        deadline = time.monotonic() + 30
        while (me := c.get("/api/me/", headers={"Authorization": f"Bearer {access}"})).status_code == 200:
            assert time.monotonic() < deadline, "a one-second access token still passes after 30 s"
            time.sleep(0.2)
        expired_codes.append(me.json().get("error"))
        return [me]

    seen = side_by_side(sqlite_project, probe, extra={"ACCESS_LIFETIME": "1", "LEEWAY": "0"})
    message = {"token_class": "AccessToken", "token_type": "access", "message": "Token is expired"}
    expired = {"detail": "Given token not valid for any token type", "code": "token_not_valid"}
    assert seen["keyturn"] == seen["simplejwt"] == [(401, {**expired, "messages": [message]})]
    assert expired_codes == [None, "token_expired"]


def test_an_access_token_where_a_refresh_token_is_wanted_has_the_wrong_type(
    sqlite_project: ExampleProject,
) -> None:
    """An access token sent to ``token/refresh/`` or ``token/blacklist/`` is 401 ``token_not_valid`` with
    SimpleJWT's "Token has wrong type" (Keyturn's ``token_invalid`` beside it), for Keyturn's access tokens
    and, while the migration lasts, SimpleJWT's own from before the switch; a token that is none at all
    stays "Token is invalid". Before: "Token is invalid" for all."""
    (user,) = sqlite_project.add_users(1)

    def probe(c: httpx.Client) -> list[httpx.Response]:
        access = c.post("/api/token/", json=user.credentials()).json()["access"]
        return [
            c.post("/api/token/refresh/", json={"refresh": access}),
            c.post("/api/token/blacklist/", json={"refresh": access}),
            c.post("/api/token/refresh/", json={"refresh": access + "x"}),
        ]

    seen = side_by_side(sqlite_project, probe)
    wrong_type = (401, {"detail": "Token has wrong type", "code": "token_not_valid"})
    invalid = (401, {"detail": "Token is invalid", "code": "token_not_valid"})
    assert seen["keyturn"] == seen["simplejwt"] == [wrong_type, wrong_type, invalid]

    with sqlite_project.serve("simplejwt") as url, httpx.Client(base_url=url, timeout=30) as c:
        old_access = c.post("/api/token/", json=user.credentials()).json()["access"]
    with sqlite_project.serve("keyturn") as url, httpx.Client(base_url=url, timeout=30) as c:
        for route in ("/api/token/refresh/", "/api/token/blacklist/"):
            refused = c.post(route, json={"refresh": old_access})
            assert simplejwts_part(refused) == wrong_type, refused.text
            assert refused.json()["error"] == "token_invalid"
            assert refused.headers["www-authenticate"] == 'Bearer realm="api"'
