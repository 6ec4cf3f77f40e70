"""SimpleJWT's routes and ``KeyturnAuthentication`` answer as djangorestframework-simplejwt did, side by side.

The same requests go to the example project on SimpleJWT's own views (``TOKENS=simplejwt``) and on
``keyturn.django``; the answers must match but for Keyturn's own keys beside SimpleJWT's (``error``,
``error_description``, ``retryable``), as docs/django.md says. Found by an outside-in audit of the docs.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest

from .._challenges import ALGS, challenges
from ._project import ExampleProject
from ._simplejwt_defaults import simplejwt_defaults

KEYTURN_KEYS = ("error", "error_description", "retryable")
SETTINGS_PATH = str(Path(__file__).resolve().parent)  # the settings modules; the harness adds src
HEADER_TYPES = {"DJANGO_SETTINGS_MODULE": "_header_types_settings", "PYTHONPATH": SETTINGS_PATH}
OTHER_BEARER = {"DJANGO_SETTINGS_MODULE": "_other_bearer_settings", "PYTHONPATH": SETTINGS_PATH}
REVOKE_TOKEN = {"DJANGO_SETTINGS_MODULE": "_revoke_token_settings", "PYTHONPATH": SETTINGS_PATH}
NOT_GIVEN = (401, {"detail": "Authentication credentials were not provided."})


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
        replayed = c.post("/api/token/refresh/", json={"refresh": pair["refresh"]})  # inside the grace period
        assert replayed.status_code == 200, (
            replayed.text
        )  # a copy (two tabs): the same answer, docs/django.md
        assert replayed.json()["refresh"] == rotated.json()["refresh"]
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
    assert seen["keyturn"] == seen["simplejwt"] == [me, me, not_valid, not_valid, NOT_GIVEN]
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


@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_a_scheme_not_in_auth_header_types_is_left_to_the_next_authentication_class(
    sqlite_project: ExampleProject, server: str
) -> None:
    """With ``AUTH_HEADER_TYPES = ("JWT",)`` and a second authentication class that takes ``Bearer`` tokens
    (django-oauth-toolkit's, say), ``KeyturnAuthentication`` leaves ``Bearer`` to it as
    ``JWTAuthentication`` does (None), and reads its own header as that reads it: split on any whitespace
    (a tab too), and a ``JWT`` without exactly one token is ``bad_authorization_header``. Before: every
    ``Bearer`` header was Keyturn's (401 ``token_not_valid`` for the other class's tokens), a tab was
    "not provided" and a bare ``JWT`` was ``token_not_valid``."""
    (user,) = sqlite_project.add_users(1)

    def probe(c: httpx.Client) -> list[httpx.Response]:
        access = c.post("/api/token/", json=user.credentials()).json()["access"]
        return [
            c.get("/api/me/", headers={"Authorization": f"JWT {access}"}),
            c.get("/api/me/", headers={"Authorization": f"Bearer other:{user.username}"}),
            c.get("/api/me/", headers={"Authorization": f"Bearer {access}"}),
            c.get("/api/me/", headers={"Authorization": f"JWT\t{access}"}),
            c.get("/api/me/", headers={"Authorization": f"JWT  {access}"}),
            c.get("/api/me/", headers={"Authorization": "JWT"}),
            c.get("/api/me/", headers={"Authorization": f"JWT {access} {access}"}),
            c.get("/api/me/", headers={"Authorization": ""}),
            c.get("/api/me/", headers={"Authorization": "Basic abc"}),
        ]

    seen = side_by_side(sqlite_project, probe, extra=OTHER_BEARER, server=server)
    me = (200, {"id": 1, "username": user.username, "email": user.email})
    bad = (
        401,
        {
            "detail": "Authorization header must contain two space-delimited values",
            "code": "bad_authorization_header",
        },
    )
    assert seen["keyturn"] == seen["simplejwt"] == [me, me, NOT_GIVEN, me, me, bad, bad, NOT_GIVEN, NOT_GIVEN]

    with (
        sqlite_project.serve("keyturn", extra=OTHER_BEARER, server=server) as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        access = c.post("/api/token/", json=user.credentials()).json()["access"]
        # Schemes are case-insensitive (RFC 9110 section 11.1): where SimpleJWT compares bytes and says
        # "not provided", Keyturn takes the token. No other class is denied a header it could have read.
        lower = c.get("/api/me/", headers={"Authorization": f"jwt {access}"})
        assert lower.status_code == 200, lower.text
        bare = c.get("/api/me/", headers={"Authorization": "JWT"})
        assert (bare.json()["error"], bare.json()["code"]) == ("token_invalid", "bad_authorization_header")


def test_refusals_challenge_in_the_first_of_auth_header_types(sqlite_project: ExampleProject) -> None:
    """With ``AUTH_HEADER_TYPES = ("JWT",)`` (``Bearer`` left to the next class), ``KeyturnAuthentication``
    challenges in ``JWT`` as ``JWTAuthentication`` does, a bad token's error in that challenge and
    ``DPoP`` after it while DPoP is on; never ``Bearer``, which this path does not act on (RFC 9110
    section 11.6.1). The realm stays Keyturn's (docs/django.md). Before: ``Bearer realm="keyturn", DPoP
    …`` for all three."""
    challenged: list[list[str]] = []

    def probe(c: httpx.Client) -> list[httpx.Response]:
        answers = [
            c.get("/api/me/"),
            c.get("/api/me/", headers={"Authorization": "JWT abc"}),
            c.get("/api/me/", headers={"Authorization": "JWT"}),
        ]
        challenged.append([answer.headers["www-authenticate"] for answer in answers])
        return answers

    seen = side_by_side(sqlite_project, probe, extra=OTHER_BEARER)
    assert seen["keyturn"] == seen["simplejwt"]
    assert [status for status, _ in seen["keyturn"]] == [401] * 3
    simplejwts, keyturns = challenged
    assert simplejwts == ['JWT realm="api"'] * 3
    for header, error in zip(keyturns, [None, "invalid_token", "invalid_token"], strict=True):
        (scheme, params), *rest = challenges(header)
        assert (scheme, params["realm"], params.get("error")) == ("JWT", "keyturn", error), header
        assert rest == [("DPoP", {"realm": "keyturn", "algs": ALGS})], header


def test_both_routes_and_the_api_word_a_refusal_alike(sqlite_project: ExampleProject) -> None:
    """One table of SimpleJWT's words (``keyturn.django.simplejwt.DETAIL``): the ``message`` of the API's
    refusal is the ``detail`` SimpleJWT's routes give for the same Keyturn code. Before: the API had a
    table of its own without ``refresh_token_expired``, ``session_expired`` and ``refresh_token_reused``
    ("Token is invalid" where the routes said "Token is expired" or "Token is blacklisted")."""
    seen = sqlite_project.shell(
        "import json\n"
        "from keyturn import errors\n"
        "from keyturn.django.authentication import refusal_body\n"
        "from keyturn.django.simplejwt import refusal\n"
        "def leaves(cls):\n"
        "    return [cls] + [leaf for sub in cls.__subclasses__() for leaf in leaves(sub)]\n"
        "codes = {}\n"
        "for cls in leaves(errors.TokenError) + leaves(errors.SessionError):\n"
        "    if cls.code in codes or cls.__module__ != 'keyturn.errors':\n"
        "        continue\n"
        "    error = cls()\n"
        "    api = refusal_body(error)['messages'][0]['message']\n"
        "    codes[cls.code] = [api, json.loads(refusal(error).content)['detail']]\n"
        "print(json.dumps(codes))\n"
    )
    words = json.loads(seen.splitlines()[-1])
    assert {"token_expired", "refresh_token_expired", "session_expired", "refresh_token_reused"} <= set(words)
    assert {code: api for code, (api, _) in words.items()} == {
        code: routes for code, (_, routes) in words.items()
    }
    assert words["refresh_token_reused"][0] == "Token is blacklisted"
    assert words["session_expired"][0] == "Token is expired"


def test_a_deleted_users_token_is_refused_as_blacklisted_where_simplejwt_says_user_not_found(
    sqlite_project: ExampleProject,
) -> None:
    """docs/django.md's departure: SimpleJWT's ``JWTAuthentication`` refuses the access token of a deleted
    user as 401 ``user_not_found`` (``user_inactive`` for an inactive one); Keyturn refuses it as
    ``token_not_valid`` "Token is blacklisted" (``token_revoked``), the answer the revocation of the
    user's sessions gives a second later anyway, on which a SimpleJWT frontend refreshes and is refused."""
    gone, idle, gone2, idle2 = sqlite_project.add_users(4)
    seen = {}
    for tokens, users in (("simplejwt", (gone, idle)), ("keyturn", (gone2, idle2))):
        with sqlite_project.serve(tokens) as url, httpx.Client(base_url=url, timeout=30) as c:
            access = [c.post("/api/token/", json=u.credentials()).json()["access"] for u in users]
            sqlite_project.shell(
                f"User.objects.get(username={users[0].username!r}).delete()\n"
                f"u = User.objects.get(username={users[1].username!r}); u.is_active = False; u.save()\n",
                tokens=tokens,
            )
            seen[tokens] = [c.get("/api/me/", headers={"Authorization": f"Bearer {a}"}) for a in access]
    assert [simplejwts_part(r) for r in seen["simplejwt"]] == [
        (401, {"detail": "User not found", "code": "user_not_found"}),
        (401, {"detail": "User is inactive", "code": "user_inactive"}),
    ]
    message = {"token_class": "AccessToken", "token_type": "access", "message": "Token is blacklisted"}
    blacklisted = {"detail": "Given token not valid for any token type", "code": "token_not_valid"}
    assert [simplejwts_part(r) for r in seen["keyturn"]] == [
        (401, {**blacklisted, "messages": [message]})
    ] * 2
    assert [r.json()["error"] for r in seen["keyturn"]] == ["token_revoked"] * 2


def test_an_expired_access_token_where_a_refresh_token_is_wanted_is_expired(
    sqlite_project: ExampleProject,
) -> None:
    """An access token past its ``exp`` sent to ``token/refresh/`` or ``token/blacklist/`` is "Token is
    expired", as SimpleJWT says it (its decoding checks ``exp`` before the token's type is looked at);
    Keyturn's ``token_invalid`` beside it (the token is still no refresh token). Before: "Token is
    invalid"."""
    (user,) = sqlite_project.add_users(1)

    def probe(c: httpx.Client) -> list[httpx.Response]:
        access = c.post("/api/token/", json=user.credentials()).json()["access"]
        deadline = time.monotonic() + 30
        while c.get("/api/me/", headers={"Authorization": f"Bearer {access}"}).status_code == 200:
            assert time.monotonic() < deadline, "a one-second access token still passes after 30 s"
            time.sleep(0.2)
        return [
            c.post("/api/token/refresh/", json={"refresh": access}),
            c.post("/api/token/blacklist/", json={"refresh": access}),
        ]

    seen = side_by_side(sqlite_project, probe, extra={"ACCESS_LIFETIME": "1", "LEEWAY": "0"})
    expired = (401, {"detail": "Token is expired", "code": "token_not_valid"})
    assert seen["keyturn"] == seen["simplejwt"] == [expired, expired]


def test_a_refresh_token_sent_as_an_access_token_has_the_wrong_type(sqlite_project: ExampleProject) -> None:
    """A refresh token in ``Authorization: Bearer`` at the API is refused as ``JWTAuthentication`` refuses
    it, "Token has wrong type", a rotated one too (an access token's check looks at no blacklist), and,
    while the migration lasts, SimpleJWT's own refresh tokens from before the switch; Keyturn's
    ``token_invalid`` beside it. Before: "Token is invalid"."""
    (user,) = sqlite_project.add_users(1)

    def probe(c: httpx.Client) -> list[httpx.Response]:
        refresh = c.post("/api/token/", json=user.credentials()).json()["refresh"]
        assert c.post("/api/token/refresh/", json={"refresh": refresh}).status_code == 200
        return [c.get("/api/me/", headers={"Authorization": f"Bearer {refresh}"})]

    seen = side_by_side(sqlite_project, probe)
    message = {"token_class": "AccessToken", "token_type": "access", "message": "Token has wrong type"}
    body = {"detail": "Given token not valid for any token type", "code": "token_not_valid"}
    wrong_type = (401, {**body, "messages": [message]})
    assert seen["keyturn"] == seen["simplejwt"] == [wrong_type]

    with sqlite_project.serve("simplejwt") as url, httpx.Client(base_url=url, timeout=30) as c:
        old_refresh = c.post("/api/token/", json=user.credentials()).json()["refresh"]
    with sqlite_project.serve("keyturn") as url, httpx.Client(base_url=url, timeout=30) as c:
        refused = c.get("/api/me/", headers={"Authorization": f"Bearer {old_refresh}"})
        assert simplejwts_part(refused) == wrong_type, refused.text
        assert refused.json()["error"] == "token_invalid"


def test_check_revoke_token_refuses_a_pre_switch_access_token_once_the_password_changes(
    sqlite_project: ExampleProject,
) -> None:
    """With SimpleJWT's ``CHECK_REVOKE_TOKEN`` on, a SimpleJWT access token from before the switch is
    refused once its user's password has changed, as ``JWTAuthentication`` refused it (its
    ``hash_password`` claim no longer matches); Keyturn words it as for a deleted user, "Token is
    blacklisted" (``token_revoked``). Before: it passed until it expired."""
    (user,) = sqlite_project.add_users(1)
    change = f"u = User.objects.get(username={user.username!r}); u.set_password('another-pw-1'); u.save()\n"
    with (
        sqlite_project.serve("simplejwt", extra=REVOKE_TOKEN) as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        access = c.post("/api/token/", json=user.credentials()).json()["access"]
        assert c.get("/api/me/", headers={"Authorization": f"Bearer {access}"}).status_code == 200
    with (
        sqlite_project.serve("keyturn", extra=REVOKE_TOKEN) as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        passes = c.get("/api/me/", headers={"Authorization": f"Bearer {access}"})
        assert passes.status_code == 200, passes.text
        sqlite_project.shell(change, tokens="simplejwt")
        refused = c.get("/api/me/", headers={"Authorization": f"Bearer {access}"})
    message = {"token_class": "AccessToken", "token_type": "access", "message": "Token is blacklisted"}
    body = {"detail": "Given token not valid for any token type", "code": "token_not_valid"}
    assert simplejwts_part(refused) == (401, {**body, "messages": [message]}), refused.text
    assert refused.json()["error"] == "token_revoked"


def test_docs_say_what_keyturn_does_with_each_simplejwt_setting() -> None:
    """docs/django.md's table names every setting of the installed SimpleJWT once (honoured, for old
    tokens, or not read), so a setting a project relies on is never silently dropped by the switch.
    Before: a few were named along the way; ``ROTATE_REFRESH_TOKENS = False``, custom serializers,
    ``USER_AUTHENTICATION_RULE`` and ``CHECK_REVOKE_TOKEN`` were not."""
    settings = set(simplejwt_defaults())
    docs = (Path(__file__).resolve().parents[2] / "docs" / "django.md").read_text()
    section = docs.split("## SimpleJWT's settings\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    named = [name for row in rows for name in re.findall(r"`([A-Z_]+)`", row)]
    assert sorted(named) == sorted(settings)
