"""The OAuth 2.0 surface on a real ``keyturn serve`` (issue 17, acceptance 1 without the browser):

- authlib's OAuth 2.0 client (its httpx integration) reads the RFC 8414 metadata, takes the token
  endpoint from it, and keeps calling an API through refreshes at ``/oauth/token``;
- a confidential client registered with ``keyturn clients add --confidential`` introspects an active, a
  revoked and an expired token (RFC 7662), and a wrong secret is ``invalid_client`` with a Basic challenge;
- RFC 6749's errors carry Keyturn's code beside them; a token issued to another client is ``invalid_grant``.

Access tokens live 5 s (``KEYTURN_LEEWAY=0``), and there is no grace period, so an old refresh token is
a reuse at once; the expired-token case waits out one lifetime, the one
fixed wait here. authlib refreshes a token 60 s before it expires (its default leeway), so with 5 s tokens
it refreshes before every call: each call is a rotation through ``/oauth/token``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from authlib.deprecate import AuthlibDeprecationWarning

from ._server import Cluster, cluster, run_cli

with warnings.catch_warnings():
    # authlib 1.9 prefers the httpx2 package and says so on import; the issue asks for httpx, which it
    # still drives (the fallback this warning is about).
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.httpx_client import OAuth2Client

LIFETIME = 5
ENV = {"KEYTURN_ACCESS_TOKEN_LIFETIME": str(LIFETIME), "KEYTURN_LEEWAY": "0", "KEYTURN_GRACE_PERIOD": "0"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    """One server, user alice, a public client ``spa`` and a confidential ``rs`` (with its secret),
    registered with the CLI while the server runs."""
    data_dir = tmp_path_factory.mktemp("oauth") / "data"
    with cluster(data_dir, 1, ENV) as group:
        added = run_cli(data_dir, "clients", "add", "rs", "--confidential", env=ENV)
        assert added.returncode == 0, added.stderr
        secret = added.stdout.split("client_secret: ", 1)[1].strip()
        assert run_cli(data_dir, "clients", "add", "spa", env=ENV).returncode == 0
        yield group, secret


def login(group: Cluster, **extra: str) -> dict[str, Any]:
    with group.server.client() as http:
        response = http.post(
            "/auth/login", json={"username": group.username, "password": group.password, **extra}
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def exp_of(token: str) -> float:
    return float(jwt.decode(token, options={"verify_signature": False})["exp"])


def test_authlib_refreshes_through_the_token_endpoint_it_read_from_the_metadata(
    service: tuple[Cluster, str],
) -> None:
    """An off-the-shelf client, configured from ``/.well-known/oauth-authorization-server`` alone, keeps
    a session alive: each call rotates the refresh token and the API accepts each new access token."""
    group, _ = service
    url = group.server.url
    meta = httpx.get(url + "/.well-known/oauth-authorization-server").json()
    assert meta["grant_types_supported"] == ["refresh_token"]
    assert "none" in meta["token_endpoint_auth_methods_supported"]
    assert meta["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA"]  # DPoP optional, the default
    assert httpx.get(meta["jwks_uri"]).json()["keys"]

    first = login(group, client_id="spa")
    seen: list[dict[str, Any]] = []

    def update_token(token: dict[str, Any], refresh_token: str | None = None, **_: Any) -> None:
        seen.append({"token": dict(token), "replaced": refresh_token})

    token = {**first, "expires_at": int(exp_of(first["access_token"]))}
    with OAuth2Client(
        client_id="spa",
        token_endpoint_auth_method="none",
        token=token,
        token_endpoint=meta["token_endpoint"],
        update_token=update_token,
    ) as client:
        for _ in range(3):
            me = client.get(url + "/auth/me")
            assert me.status_code == 200, me.text
            assert me.json()["subject"] == group.username

    assert len(seen) == 3
    refresh_tokens = [first["refresh_token"]] + [s["token"]["refresh_token"] for s in seen]
    assert len(set(refresh_tokens)) == 4, "every refresh rotated"
    assert [s["replaced"] for s in seen] == refresh_tokens[:3]
    assert all(s["token"]["token_type"] == "Bearer" for s in seen)
    claims = jwt.decode(seen[-1]["token"]["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == "spa"


def test_authlib_sees_invalid_grant_for_a_reused_token_and_the_session_ends(
    service: tuple[Cluster, str],
) -> None:
    """Reuse detection is the same as ``/auth/refresh``'s: past the grace period (none here) an old token
    ends the session; here it comes back after its successor was used (generation two behind)."""
    group, _ = service
    url = group.server.url
    pair = login(group)
    with httpx.Client(base_url=url) as http:
        second = http.post(
            "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
        ).json()
        third = http.post(
            "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]}
        )
        assert third.status_code == 200
        assert third.headers["cache-control"] == "no-store"
    client = OAuth2Client(client_id="keyturn", token_endpoint_auth_method="none")
    with client, pytest.raises(OAuthError) as refused:
        client.refresh_token(url + "/oauth/token", refresh_token=pair["refresh_token"])
    assert refused.value.error == "invalid_grant"

    with httpx.Client(base_url=url) as http:
        after = http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": third.json()["refresh_token"]},
        )
    assert after.status_code == 400
    assert after.json()["error"] == "invalid_grant"
    assert after.json()["keyturn_error"] == "session_revoked"


def test_a_token_issued_to_another_client_is_invalid_grant_and_still_works_for_its_own(
    service: tuple[Cluster, str],
) -> None:
    group, secret = service
    pair = login(group, client_id="spa")
    grant = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    with group.server.client() as http:
        by_default = http.post("/oauth/token", data=grant)
        by_rs = http.post("/oauth/token", data=grant, auth=("rs", secret))
        by_spa = http.post("/oauth/token", data={**grant, "client_id": "spa"})

    assert by_default.status_code == 400
    assert by_default.json()["error"] == "invalid_grant"
    assert by_default.json()["keyturn_error"] == "token_invalid"
    assert by_rs.status_code == 400
    assert by_spa.status_code == 200, by_spa.text


def test_a_confidential_client_introspects_an_active_a_revoked_and_an_expired_token(
    service: tuple[Cluster, str],
) -> None:
    group, secret = service
    expiring = login(group)
    with group.server.client() as http:

        def look(token: str, **kwargs: Any) -> dict[str, Any]:
            response = http.post("/oauth/introspect", data={"token": token}, **kwargs)
            assert response.status_code == 200, response.text
            assert response.headers["cache-control"] == "no-store"
            body: dict[str, Any] = response.json()
            return body

        active = login(group)
        live = look(active["access_token"], auth=("rs", secret))
        live_refresh = http.post(  # client_secret_post this time
            "/oauth/introspect",
            data={"token": active["refresh_token"], "client_id": "rs", "client_secret": secret},
        ).json()
        revoked = login(group)
        assert http.post("/oauth/revoke", data={"token": revoked["refresh_token"]}).status_code == 200
        gone = look(revoked["access_token"], auth=("rs", secret))
        gone_refresh = look(revoked["refresh_token"], auth=("rs", secret))
        while time.time() <= exp_of(expiring["access_token"]) + 0.2:
            time.sleep(0.2)
        expired = look(expiring["access_token"], auth=("rs", secret))

    assert live["active"] is True
    assert live["sub"] == group.username
    assert live["sid"] == active["session_id"]
    assert live["client_id"] == "keyturn"
    assert live["token_type"] == "Bearer"
    assert live_refresh["active"] is True
    assert live_refresh["token_type"] == "refresh_token"
    assert gone == {"active": False}
    assert gone_refresh == {"active": False}
    assert expired == {"active": False}


def test_introspection_refuses_a_wrong_secret_and_a_public_client_with_a_basic_challenge(
    service: tuple[Cluster, str],
) -> None:
    group, secret = service
    token = login(group)["access_token"]
    with group.server.client() as http:
        wrong = http.post("/oauth/introspect", data={"token": token}, auth=("rs", secret + "x"))
        public = http.post("/oauth/introspect", data={"token": token, "client_id": "spa"})
        anonymous = http.post("/oauth/introspect", data={"token": token})

    for response in (wrong, public, anonymous):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Basic realm="keyturn"'
        assert response.json()["error"] == "invalid_client"
        assert response.json()["keyturn_error"] == "invalid_credentials"


def test_rfc_6749_errors_for_malformed_token_requests(service: tuple[Cluster, str]) -> None:
    group, _ = service
    with group.server.client() as http:
        password = http.post("/oauth/token", data={"grant_type": "password", "username": "x"})
        missing = http.post("/oauth/token", data={"grant_type": "refresh_token"})
        twice = http.post(
            "/oauth/token",
            content=b"grant_type=refresh_token&refresh_token=a&refresh_token=b",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        forged = http.post("/oauth/token", json={"grant_type": "refresh_token", "refresh_token": "x.y.z"})
        unknown = http.post("/oauth/nothing-here")

    assert (password.status_code, password.json()["error"]) == (400, "unsupported_grant_type")
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    assert (twice.status_code, twice.json()["error"]) == (400, "invalid_request")
    assert (forged.status_code, forged.json()["error"]) == (400, "invalid_grant")
    assert forged.json()["keyturn_error"] == "token_invalid"
    assert (unknown.status_code, unknown.json()["error"]) == (404, "invalid_request")


def test_a_login_may_name_only_a_registered_public_client(service: tuple[Cluster, str]) -> None:
    """A session for a confidential client, or for no client at all, is refused before any password
    is checked: 400 ``invalid_request`` in Keyturn's own form (``/auth/login`` is not an OAuth route)."""
    group, _ = service
    with group.server.client() as http:
        for client_id in ("rs", "nobody", "keyturn "):
            response = http.post(
                "/auth/login",
                json={"username": group.username, "password": group.password, "client_id": client_id},
            )
            assert response.status_code == 400, client_id
            assert response.json()["error"] == "invalid_request"
    assert (
        jwt.decode(login(group, client_id="keyturn")["access_token"], options={"verify_signature": False})[
            "client_id"
        ]
        == "keyturn"
    )


def test_the_cli_lists_and_removes_clients_and_a_removed_client_is_refused(
    service: tuple[Cluster, str],
) -> None:
    group, _ = service
    data_dir = group.data_dir
    assert run_cli(data_dir, "clients", "add", "short-lived", env=ENV).returncode == 0
    listed = run_cli(data_dir, "clients", "list", env=ENV).stdout
    assert "keyturn\tpublic\tbuilt in" in listed
    assert "rs\tconfidential" in listed
    assert "short-lived\tpublic" in listed
    assert "client_secret" not in listed

    assert run_cli(data_dir, "clients", "remove", "short-lived", env=ENV).returncode == 0
    again = run_cli(data_dir, "clients", "remove", "short-lived", env=ENV)
    builtin = run_cli(data_dir, "clients", "remove", "keyturn", env=ENV)
    assert again.returncode == 1
    assert builtin.returncode == 2
    with group.server.client() as http:
        refused = http.post("/oauth/revoke", data={"token": "x", "client_id": "short-lived"})
    assert refused.status_code == 401
    assert Path(data_dir).is_dir()


def test_the_openapi_document_describes_the_oauth_routes(service: tuple[Cluster, str]) -> None:
    """Forms or JSON, HTTP Basic for confidential clients, RFC 6749's error body with Keyturn's code."""
    group, _ = service
    with group.server.client() as http:
        schema = http.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["client"]["scheme"] == "basic"
    for path in ("/oauth/token", "/oauth/revoke", "/oauth/introspect"):
        operation = schema["paths"][path]["post"]
        assert set(operation["requestBody"]["content"]) == {
            "application/x-www-form-urlencoded",
            "application/json",
        }
        assert operation["security"] == [{"client": []}, {}]
        error = operation["responses"]["401"]["content"]["application/json"]["schema"]["$ref"]
        assert error.endswith("/OAuthErrorResponse")
    assert "/.well-known/oauth-authorization-server" in schema["paths"]
