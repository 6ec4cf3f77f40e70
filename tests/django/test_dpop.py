"""``keyturn.django`` binds sessions to DPoP keys (RFC 9449) as ``keyturn serve`` does: a login with a proof
is bound, its refreshes need proofs by that key, and a copy of its refresh token without the key is
refused (``refresh_token_bound``) while the session goes on."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from keyturn.client.dpop import DpopKey

from .._challenges import ALGS, BARE, challenges
from ._project import ExampleProject

SETTINGS_PATH = str(Path(__file__).resolve().parent)  # the settings modules; the harness adds src
JWT_SCHEME = {"DJANGO_SETTINGS_MODULE": "_other_bearer_settings", "PYTHONPATH": SETTINGS_PATH}
"""SimpleJWT's ``AUTH_HEADER_TYPES = ("JWT",)``, ``Bearer`` left to the next authentication class."""
HEADER_NAME = {"DJANGO_SETTINGS_MODULE": "_header_name_settings", "PYTHONPATH": SETTINGS_PATH}
"""The same, with ``AUTH_HEADER_NAME = "HTTP_X_ACCESS_TOKEN"``."""
NOT_GIVEN = "Authentication credentials were not provided."


def test_a_bound_session_in_the_django_app(keyturn_project: ExampleProject) -> None:
    (user,) = keyturn_project.add_users(1)
    key = DpopKey.generate()
    with (
        keyturn_project.serve("keyturn", server="gunicorn") as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):

        def proof(path: str, by: DpopKey = key) -> dict[str, str]:
            return {"DPoP": by.proof("POST", url + path, now=time.time())}

        started = c.post(
            "/api/auth/login",
            json={"username": user.username, "password": user.password},
            headers=proof("/api/auth/login"),
        )
        assert started.status_code == 200, started.text
        token = started.json()["refresh_token"]
        for _ in range(2):
            for headers in ({}, proof("/api/auth/refresh", DpopKey.generate())):
                stolen = c.post("/api/auth/refresh", json={"refresh_token": token}, headers=headers)
                assert (stolen.status_code, stolen.json()["error"]) == (401, "refresh_token_bound")
            wrong_url = c.post(
                "/api/auth/refresh", json={"refresh_token": token}, headers=proof("/api/auth/login")
            )
            assert (wrong_url.status_code, wrong_url.json()["error"]) == (400, "invalid_dpop_proof")
            rotated = c.post(
                "/api/auth/refresh", json={"refresh_token": token}, headers=proof("/api/auth/refresh")
            )
            assert rotated.status_code == 200, rotated.text
            token = rotated.json()["refresh_token"]


def test_the_projects_api_takes_a_bound_access_token_as_dpop_with_its_proof(
    sqlite_project: ExampleProject,
) -> None:
    """``KeyturnAuthentication`` in the project (DRF's ``/api/me/``) takes a DPoP-bound access token as
    ``DPoP <token>`` with one proof of its key for this very request, once, as every adapter does
    (docs/resource-servers.md), and challenges in the scheme it takes. Before: ``DPoP <token>`` was
    "credentials were not provided", and the token sent as Bearer was refused with a ``DPoP`` challenge the
    API did not follow (and no ``DPoP`` challenge for a request without a token)."""
    (user,) = sqlite_project.add_users(1)
    key = DpopKey.generate()
    bound = {"DPOP_BIND_ACCESS_TOKENS": "on"}
    with (
        sqlite_project.serve("keyturn", workers=1, extra=bound) as url,  # one process: one replay cache
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        login = {"DPoP": key.proof("POST", url + "/api/auth/login", now=time.time())}
        started = c.post("/api/auth/login", json=user.credentials(), headers=login)
        assert (started.status_code, started.json()["token_type"]) == (200, "DPoP"), started.text
        access = started.json()["access_token"]
        unbound = c.post("/api/auth/login", json=user.credentials()).json()["access_token"]

        def dpop(token: str = access, by: DpopKey = key, path: str = "/api/me/") -> dict[str, str]:
            proof = by.proof("GET", url + path, now=time.time(), access_token=token)
            return {"Authorization": f"DPoP {token}", "DPoP": proof}

        proven = dpop()
        me = c.get("/api/me/", headers=proven)
        assert (me.status_code, me.json()["username"]) == (200, user.username), me.text
        refused = [
            c.get("/api/me/", headers=proven),  # the same proof again
            c.get("/api/me/", headers={"Authorization": f"DPoP {access}"}),
            c.get("/api/me/", headers=dpop(by=DpopKey.generate())),
            c.get("/api/me/", headers=dpop(path="/api/status/")),
            c.get("/api/me/", headers=dpop(token=unbound)),
            c.get("/api/me/", headers={"Authorization": f"Bearer {access}"}),
        ]
        for answer in refused:
            assert (answer.status_code, answer.json()["error"]) == (401, "invalid_dpop_proof"), answer.text
            assert answer.json()["code"] == "invalid_dpop_proof"
            (scheme, params), *others = challenges(answer.headers["www-authenticate"])
            assert (scheme, params["error"], params["algs"], others) == (
                "DPoP",
                "invalid_dpop_proof",
                ALGS,
                [],
            )
        assert c.get("/api/me/", headers={"Authorization": f"Bearer {unbound}"}).status_code == 200
        missing = c.get("/api/me/")
        assert (missing.status_code, missing.headers["www-authenticate"]) == (401, BARE)


def test_a_simplejwt_access_token_is_bound_to_no_key(sqlite_project: ExampleProject) -> None:
    """While the migration lasts, a SimpleJWT access token issued before the switch passes the project's
    API as ``Bearer`` (``JWTAuthentication``'s way) and is refused as ``DPoP``, as any token without ``cnf``
    is (``keyturn.dpop.check_presentation``). Before: ``DPoP`` was "credentials were not provided"."""
    (user,) = sqlite_project.add_users(1)
    with sqlite_project.serve("simplejwt") as url, httpx.Client(base_url=url, timeout=30) as c:
        access = c.post("/api/token/", json=user.credentials()).json()["access"]
    with sqlite_project.serve("keyturn") as url, httpx.Client(base_url=url, timeout=30) as c:
        proof = DpopKey.generate().proof("GET", url + "/api/me/", now=time.time(), access_token=access)
        as_dpop = c.get("/api/me/", headers={"Authorization": f"DPoP {access}", "DPoP": proof})
        assert (as_dpop.status_code, as_dpop.json()["error"]) == (401, "invalid_dpop_proof"), as_dpop.text
        assert c.get("/api/me/", headers={"Authorization": f"Bearer {access}"}).status_code == 200


@pytest.mark.parametrize(
    ("header", "settings"),
    [("Authorization", JWT_SCHEME), ("X-Access-Token", HEADER_NAME)],
    ids=["Authorization", "X-Access-Token"],
)
def test_the_projects_api_challenges_in_the_scheme_its_token_was_read_in(
    sqlite_project: ExampleProject, header: str, settings: dict[str, str]
) -> None:
    """Under SimpleJWT's ``AUTH_HEADER_TYPES = ("JWT",)`` (and ``AUTH_HEADER_NAME``), the scheme of a
    refusal is the one ``KeyturnAuthentication`` read the token in: a DPoP-bound token sent as ``JWT`` or
    ``jwt`` is ``invalid_dpop_proof`` in the ``DPoP`` challenge alone; a bad token sent as ``DPoP`` under a
    custom header name is refused in ``DPoP`` alone; ``DPoP`` followed by a tab is no DPoP token (as at
    every other adapter) and is left to the next class; a request without a token is challenged in
    ``JWT`` and ``DPoP``, never ``Bearer``, a scheme this path leaves to another class. Before: the scheme
    came from ``Authorization`` alone (``Bearer`` plus ``DPoP`` for ``X-Access-Token: DPoP …``),
    ``DPoP<TAB><token>`` passed, and every bearer-side challenge was ``Bearer``."""
    (user,) = sqlite_project.add_users(1)
    key = DpopKey.generate()
    bound = {**settings, "DPOP_BIND_ACCESS_TOKENS": "on"}
    with (
        sqlite_project.serve("keyturn", workers=1, extra=bound) as url,  # one process: one replay cache
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        login = {"DPoP": key.proof("POST", url + "/api/auth/login", now=time.time())}
        access = c.post("/api/auth/login", json=user.credentials(), headers=login).json()["access_token"]

        def sent(value: str, proven: bool = True) -> httpx.Response:
            proof = key.proof("GET", url + "/api/me/", now=time.time(), access_token=access)
            return c.get("/api/me/", headers={header: value, **({"DPoP": proof} if proven else {})})

        me = sent(f"DPoP {access}")
        assert (me.status_code, me.json()["username"]) == (200, user.username), me.text
        for value, error in [
            (f"JWT {access}", "invalid_dpop_proof"),
            (f"jwt {access}", "invalid_dpop_proof"),
            ("DPoP not-a-token", "invalid_token"),
        ]:
            refused = sent(value, proven=False)
            assert refused.status_code == 401, refused.text
            (scheme, params), *others = challenges(refused.headers["www-authenticate"])
            assert (scheme, params["realm"], params["error"], params["algs"], others) == (
                "DPoP",
                "keyturn",
                error,
                ALGS,
                [],
            ), value
        bare = f'JWT realm="keyturn", DPoP realm="keyturn", algs="{ALGS}"'
        for answer in (sent(f"DPoP\t{access}"), c.get("/api/me/")):
            assert (answer.status_code, answer.json()["detail"]) == (401, NOT_GIVEN), answer.text
            assert answer.headers["www-authenticate"] == bare


def test_simplejwts_login_checks_the_proof_before_the_password(
    sqlite_project: ExampleProject, tmp_path: Path
) -> None:
    """SimpleJWT's ``token/`` served by Keyturn checks the DPoP proof before ``authenticate`` runs, as
    ``/login`` does (``keyturn.django.views.password_login``): a proof for another URL is 400
    ``invalid_dpop_proof`` with the right password and with a wrong one alike, and costs no password hash.
    Before: the hash ran first, so the right password got 400 and a wrong one 401 (the answer told which),
    and every bad or replayed proof cost a hash."""
    (user,) = sqlite_project.add_users(1)
    hashes = tmp_path / "hashes"
    hashes.touch()
    counting = {
        "DJANGO_SETTINGS_MODULE": "_counting_settings",
        "PYTHONPATH": str(Path(__file__).resolve().parent),
        "HASH_COUNT_FILE": str(hashes),
    }
    key = DpopKey.generate()
    with (
        sqlite_project.serve("keyturn", extra=counting) as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        wrong_url = {"DPoP": key.proof("POST", url + "/api/auth/login", now=time.time())}
        for password in (user.password, user.password + "x"):
            body = {"username": user.username, "password": password}
            refused = c.post("/api/token/", json=body, headers=wrong_url)
            assert (refused.status_code, refused.json()["error"]) == (400, "invalid_dpop_proof"), refused.text
        assert hashes.read_text() == ""
        right = {"DPoP": key.proof("POST", url + "/api/token/", now=time.time())}
        obtained = c.post("/api/token/", json=user.credentials(), headers=right)
        assert obtained.status_code == 200, obtained.text
        assert len(hashes.read_text().splitlines()) >= 1  # the counter counts a login's hash
