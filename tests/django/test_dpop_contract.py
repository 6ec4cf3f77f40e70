"""One DPoP contract of the session routes (RFC 9449, docs/oauth.md#dpop), run against ``keyturn serve`` and
against ``keyturn.django`` (the targets of ``_oauth_targets.py``) with nonces asked for and access tokens
bound (``DPOP_NONCES``, ``DPOP_BIND_ACCESS_TOKENS``): the same answers from both.

- a login and a refresh with a proof answer with the next ``DPoP-Nonce``;
- a bound access token is taken at ``me`` and ``logout`` as ``DPoP`` with a proof of its key, and refused as
  ``Bearer`` (``keyturn.dpop.check_presentation``);
- a login's proof is checked before its password: a bad proof with a wrong password is
  ``invalid_dpop_proof``, not ``invalid_credentials``;
- logout clears the refresh cookie with the same ``Set-Cookie`` (``keyturn.server.token_reply.ended_reply``);
- logout parses a body it is sent even when ``Authorization`` names the session: a malformed one is 400
  ``invalid_request`` and ends nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from keyturn.client import DpopKey

from .._challenges import ALGS, challenges
from ._oauth_targets import TARGETS, Target, running

SETTINGS = {"DPOP_NONCES": "on", "DPOP_BIND_ACCESS_TOKENS": "on"}


@pytest.fixture(scope="module", params=TARGETS)
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with running(request.param, tmp_path_factory.mktemp(request.param), SETTINGS) as found:
        yield found


class Caller:
    """A client with a DPoP key that keeps the service's latest nonce."""

    def __init__(self, target: Target, http: httpx.Client) -> None:
        self.target, self.http, self.key, self.nonce = target, http, DpopKey.generate(), None

    def proof(self, method: str, path: str, access_token: str | None = None) -> str:
        url = self.target.url + self.target.auth + path
        return self.key.proof(method, url, now=time.time(), nonce=self.nonce, access_token=access_token)

    def call(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        response = self.http.request(method, self.target.auth + path, **kwargs)  # type: ignore[arg-type]
        self.nonce = response.headers.get("DPoP-Nonce", self.nonce)
        return response

    def login(self, password: str | None = None) -> httpx.Response:
        body = {"username": self.target.username, "password": password or self.target.password}
        return self.call("POST", "/login", json=body, headers={"DPoP": self.proof("POST", "/login")})


def test_login_and_refresh_send_the_next_nonce_and_a_bound_access_token_is_taken_as_dpop_only(
    target: Target,
) -> None:
    with target.client() as http:
        caller = Caller(target, http)
        asked = caller.login()
        assert (asked.status_code, asked.json()["error"]) == (400, "use_dpop_nonce")
        started = caller.login()
        assert started.status_code == 200, started.text
        assert started.headers["DPoP-Nonce"]  # the nonce the next proof is to carry
        pair = started.json()
        assert pair["token_type"] == "DPoP"
        access = pair["access_token"]

        as_bearer = caller.call("GET", "/me", headers={"Authorization": f"Bearer {access}"})
        assert (as_bearer.status_code, as_bearer.json()["error"]) == (401, "invalid_dpop_proof")
        me = caller.call(
            "GET",
            "/me",
            headers={"Authorization": f"DPoP {access}", "DPoP": caller.proof("GET", "/me", access)},
        )
        assert me.status_code == 200, me.text
        assert me.json()["session"]["session_id"] == pair["session_id"]
        no_proof = caller.call("GET", "/me", headers={"Authorization": f"DPoP {access}"})
        assert (no_proof.status_code, no_proof.json()["error"]) == (401, "invalid_dpop_proof")

        rotated = caller.call(
            "POST",
            "/refresh",
            json={"refresh_token": pair["refresh_token"]},
            headers={"DPoP": caller.proof("POST", "/refresh")},
        )
        assert rotated.status_code == 200, rotated.text
        assert rotated.headers["DPoP-Nonce"]
        access = rotated.json()["access_token"]

        refused = caller.call("POST", "/logout", headers={"Authorization": f"Bearer {access}"})
        assert (refused.status_code, refused.json()["error"]) == (401, "invalid_dpop_proof")
        ended = caller.call(
            "POST",
            "/logout",
            headers={"Authorization": f"DPoP {access}", "DPoP": caller.proof("POST", "/logout", access)},
        )
        assert ended.status_code == 200, ended.text
        assert ended.json() == {"revoked_sessions": [pair["session_id"]]}


def test_a_login_checks_its_proof_before_the_password(target: Target) -> None:
    with target.client() as http:
        caller = Caller(target, http)
        assert caller.login().status_code == 400  # use_dpop_nonce: now the caller has the nonce
        other_url = caller.key.proof("POST", target.url + "/elsewhere", now=time.time(), nonce=caller.nonce)
        for password in ("not the password", target.password):
            refused = caller.call(
                "POST",
                "/login",
                json={"username": target.username, "password": password},
                headers={"DPoP": other_url},
            )
            assert (refused.status_code, refused.json()["error"]) == (400, "invalid_dpop_proof")


def test_logout_clears_the_refresh_cookie_with_the_same_set_cookie(target: Target) -> None:
    with target.client() as http:
        refresh = target.login()["refresh_token"]
        ended = http.post(
            target.auth + "/logout",
            headers={"Cookie": f"keyturn_refresh={refresh}", "X-Keyturn-CSRF": "1"},
        )
        assert ended.status_code == 200, ended.text
        assert len(ended.json()["revoked_sessions"]) == 1
        assert ended.headers.get_list("set-cookie") == [
            'keyturn_refresh=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Max-Age=0; '
            f"Path={target.auth}; SameSite=Strict; Secure"
        ]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"refresh_token": '),
        ("application/json", b'{"refresh_token": 5}'),
        ("text/plain", b'{"refresh_token": "x"}'),
    ],
    ids=["not-json", "not-the-shape", "not-declared-json"],
)
def test_logout_by_access_token_still_refuses_a_malformed_body(
    target: Target, content_type: str, body: bytes
) -> None:
    """docs/contract.md: a body must be JSON of its shape, whichever credential names the session; the
    Django view used to skip the body when ``Authorization`` was there, and ended the session."""
    with target.client() as http:
        pair = target.login()
        bearer = {"Authorization": f"Bearer {pair['access_token']}"}
        refused = http.post(
            target.auth + "/logout", content=body, headers={**bearer, "Content-Type": content_type}
        )
        assert (refused.status_code, refused.json()["error"]) == (400, "invalid_request"), refused.text
        assert http.get(target.auth + "/me", headers=bearer).status_code == 200  # nothing ended
        ended = http.post(target.auth + "/logout", headers=bearer)
        assert ended.json() == {"revoked_sessions": [pair["session_id"]]}


def test_me_asks_for_its_nonce_with_a_401_dpop_challenge(target: Target) -> None:
    """RFC 9449 section 9: a resource asks for its nonce with 401 and ``WWW-Authenticate: DPoP
    error="use_dpop_nonce"`` and ``DPoP-Nonce`` (``me`` answered 400 without a challenge, as the token
    endpoint does; that keeps its 400, section 8)."""
    with target.client() as http:
        caller = Caller(target, http)
        assert caller.login().status_code == 400  # use_dpop_nonce: now the caller has the nonce
        pair = caller.login().json()
        access, me = pair["access_token"], target.url + target.auth + "/me"
        no_nonce = caller.key.proof("GET", me, now=time.time(), access_token=access)
        asked = caller.call("GET", "/me", headers={"Authorization": f"DPoP {access}", "DPoP": no_nonce})
        assert (asked.status_code, asked.json()["error"]) == (401, "use_dpop_nonce"), asked.text
        ((scheme, params),) = challenges(asked.headers["WWW-Authenticate"])
        assert (scheme, params["error"], params["algs"]) == ("DPoP", "use_dpop_nonce", ALGS)
        # The nonce it names lets the same call through, with a proof that carries it.
        assert asked.headers["DPoP-Nonce"]
        with_nonce = caller.proof("GET", "/me", access_token=access)
        answered = caller.call("GET", "/me", headers={"Authorization": f"DPoP {access}", "DPoP": with_nonce})
        assert answered.status_code == 200, answered.text

        refresh = target.url + target.auth + "/refresh"
        bare = {"DPoP": caller.key.proof("POST", refresh, now=time.time())}
        token_endpoint = caller.call(
            "POST", "/refresh", json={"refresh_token": pair["refresh_token"]}, headers=bare
        )
        assert (token_endpoint.status_code, token_endpoint.json()["error"]) == (400, "use_dpop_nonce")
        assert "WWW-Authenticate" not in token_endpoint.headers


def test_a_dpop_token_refused_at_me_is_challenged_in_dpop_alone(target: Target) -> None:
    """RFC 9449 section 7.1: a token presented as ``DPoP`` (with a valid proof) and refused, here because
    its session has ended, gets the error in the ``DPoP`` challenge; it used to go in ``Bearer``."""
    with target.client() as http:
        caller = Caller(target, http)
        assert caller.login().status_code == 400  # use_dpop_nonce: now the caller has the nonce
        access = caller.login().json()["access_token"]
        logout = {"Authorization": f"DPoP {access}", "DPoP": caller.proof("POST", "/logout", access)}
        assert caller.call("POST", "/logout", headers=logout).status_code == 200
        me = {"Authorization": f"DPoP {access}", "DPoP": caller.proof("GET", "/me", access)}
        ended = caller.call("GET", "/me", headers=me)
        assert ended.status_code == 401, ended.text
        ((scheme, params),) = challenges(ended.headers["WWW-Authenticate"])
        assert (scheme, params["error"], params["algs"]) == ("DPoP", "invalid_token", ALGS)
        assert params["error_description"].startswith(ended.json()["error"] + ": ")
