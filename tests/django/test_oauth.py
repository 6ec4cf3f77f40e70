"""What only ``keyturn.django``'s OAuth 2.0 surface has to show (the contract it shares with ``keyturn serve``
is ``test_oauth_contract.py``):

- the RFC 8414 metadata names the endpoints where the project routed them (``reverse()``, script prefix
  and all), under ``ISSUER``'s scheme and host when it is a URL, else the request's;
- ``start_session`` / ``astart_session`` start a session for a registered client (``client_id``), which that
  client then refreshes at ``oauth/token``;
- with ``DPOP_NONCES`` the token endpoint asks for the nonce and hands out the current one, as the service;
- a client added with ``keyturn_clients add strict --dpop required`` starts sessions (login,
  ``start_session``) only with a proof, and each refresh of them needs one, while the project's ``DPOP``
  stays ``optional``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from keyturn.client import DpopKey

from ._project import ExampleProject, User

METADATA_OF = """
import json
from django.test import RequestFactory
from django.urls import set_script_prefix
from keyturn.django.oauth_views import server_metadata

def document():
    request = RequestFactory().get("/.well-known/oauth-authorization-server", HTTP_HOST="localhost:8000")
    return json.loads(server_metadata(request).content)

found = [document()]
set_script_prefix("/app/")  # the project served under /app (SCRIPT_NAME, FORCE_SCRIPT_NAME)
found.append(document())
print(json.dumps(found))
"""


def endpoints(document: dict[str, Any]) -> tuple[str, ...]:
    names = ("issuer", "token_endpoint", "revocation_endpoint", "introspection_endpoint", "jwks_uri")
    return tuple(document[name] for name in names)


def test_the_metadata_names_the_endpoints_where_the_project_routed_them(tmp_path: Path) -> None:
    project = ExampleProject(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}")
    at_root, under_app = json.loads(project.shell(METADATA_OF).splitlines()[-1])
    project.env["ISSUER"] = "https://auth.example.com/app"
    public = json.loads(project.shell(METADATA_OF).splitlines()[-1])

    base = "http://localhost:8000"
    assert endpoints(at_root) == (
        "keyturn",
        f"{base}/oauth/token",
        f"{base}/oauth/revoke",
        f"{base}/oauth/introspect",
        f"{base}/oauth/jwks.json",
    )
    moved = tuple(url.replace(base, base + "/app") for url in endpoints(at_root)[1:])
    assert endpoints(under_app)[1:] == moved
    issuer = "https://auth.example.com"
    assert [endpoints(document) for document in public] == [
        ("https://auth.example.com/app", *(url.replace(base, issuer) for url in endpoints(at_root)[1:])),
        ("https://auth.example.com/app", *(url.replace(base, issuer) for url in endpoints(under_app)[1:])),
    ]


SSO_SECRET = "sso-shared-secret-of-the-test"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, User]]:
    """The example project on SQLite under uvicorn, with DPoP nonces, the SSO views, a client ``spa`` and a
    client ``strict`` that requires DPoP."""
    tmp_path = tmp_path_factory.mktemp("djoauth")
    project = ExampleProject(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}")
    project.manage("migrate")
    (user,) = project.add_users(1)
    project.manage("keyturn_clients", "add", "spa")
    project.manage("keyturn_clients", "add", "strict", "--dpop", "required")
    extra = {"DPOP_NONCES": "on", "SSO_SECRET": SSO_SECRET}
    with project.serve("keyturn", server="uvicorn", extra=extra) as url:
        yield url, user


@pytest.mark.parametrize("route", ["/api/sso/", "/api/sso-async/"])
def test_start_session_starts_a_session_for_a_registered_client(served: tuple[str, User], route: str) -> None:
    url, user = served
    with httpx.Client(base_url=url, timeout=30) as c:
        started = c.post(
            route, json={"email": user.email, "client_id": "spa"}, headers={"X-SSO-Secret": SSO_SECRET}
        )
        assert started.status_code == 200, started.text
        token = started.json()["refresh_token"]
        grant = {"grant_type": "refresh_token", "refresh_token": token}
        other = c.post("/oauth/token", data=grant)
        assert (other.json()["error"], other.json()["keyturn_error"]) == ("invalid_grant", "token_invalid")
        own = c.post("/oauth/token", data={**grant, "client_id": "spa"})
        assert own.status_code == 200, own.text


def test_the_token_endpoint_asks_for_the_dpop_nonce_and_hands_out_the_current_one(
    served: tuple[str, User],
) -> None:
    url, user = served
    key = DpopKey.generate()
    with httpx.Client(base_url=url, timeout=30) as c:

        def login(nonce: str | None) -> httpx.Response:
            proof = key.proof("POST", url + "/api/auth/login", now=time.time(), nonce=nonce)
            return c.post("/api/auth/login", json=user.credentials(), headers={"DPoP": proof})

        asked = login(None)
        assert (asked.status_code, asked.json()["error"]) == (400, "use_dpop_nonce")
        nonce = asked.headers["DPoP-Nonce"]
        started = login(nonce)
        assert started.status_code == 200, started.text
        grant = {"grant_type": "refresh_token", "refresh_token": started.json()["refresh_token"]}

        def token(nonce: str | None) -> httpx.Response:
            proof = key.proof("POST", url + "/oauth/token", now=time.time(), nonce=nonce)
            return c.post("/oauth/token", data=grant, headers={"DPoP": proof})

        without = token(None)
        assert without.status_code == 400
        assert (without.json()["error"], without.json()["keyturn_error"]) == ("use_dpop_nonce",) * 2
        assert without.headers["DPoP-Nonce"] == nonce
        rotated = token(nonce)
        assert rotated.status_code == 200, rotated.text
        assert rotated.headers["DPoP-Nonce"] == nonce  # the current one, for the next proof


def test_a_client_that_requires_dpop_starts_and_refreshes_sessions_only_with_proofs(
    served: tuple[str, User],
) -> None:
    url, user = served
    key = DpopKey.generate()
    with httpx.Client(base_url=url, timeout=30) as c:

        def login(nonce: str | None = None, *, proof: bool = True) -> httpx.Response:
            headers = {"DPoP": key.proof("POST", url + "/api/auth/login", now=time.time(), nonce=nonce)}
            body = {**user.credentials(), "client_id": "strict"}
            return c.post("/api/auth/login", json=body, headers=headers if proof else {})

        bare = login(proof=False)
        assert (bare.status_code, bare.json()["error"]) == (400, "invalid_dpop_proof")
        sso = c.post(
            "/api/sso/",
            json={"email": user.email, "client_id": "strict"},
            headers={"X-SSO-Secret": SSO_SECRET},
        )
        assert (sso.status_code, sso.json()["error"]) == (400, "invalid_dpop_proof")
        lax = c.post(
            "/api/sso/", json={"email": user.email, "client_id": "spa"}, headers={"X-SSO-Secret": SSO_SECRET}
        )
        assert lax.status_code == 200, lax.text

        nonce = login().headers["DPoP-Nonce"]
        started = login(nonce)
        assert started.status_code == 200, started.text
        grant = {"grant_type": "refresh_token", "refresh_token": started.json()["refresh_token"]}
        grant["client_id"] = "strict"
        without = c.post("/oauth/token", data=grant)
        assert (without.status_code, without.json()["keyturn_error"]) == (400, "refresh_token_bound")
        proof = key.proof("POST", url + "/oauth/token", now=time.time(), nonce=nonce)
        rotated = c.post("/oauth/token", data=grant, headers={"DPoP": proof})
        assert rotated.status_code == 200, rotated.text
