"""What only ``keyturn serve`` has of the OAuth 2.0 surface: ``keyturn clients`` against a running server,
and the OpenAPI document of the OAuth routes.

The OAuth 2.0 contract itself (authlib refreshing through the RFC 8414 metadata, reuse, introspection, RFC
6749's errors, DPoP at the token endpoint) runs against ``keyturn serve`` and the Django app alike in
``tests/django/test_oauth_contract.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._server import Cluster, cluster, run_cli

ENV: dict[str, str] = {}


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
