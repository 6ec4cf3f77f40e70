"""A client registered with ``keyturn clients add strict --dpop required`` on a real ``keyturn serve`` whose
service setting is the default (``KEYTURN_DPOP=optional``, issue 17):

- ``clients list`` shows each client's policy; ``--dpop required`` is refused while ``KEYTURN_DPOP=off``;
- a login for ``strict`` without a proof is ``invalid_dpop_proof`` (the code ``KEYTURN_DPOP=required``
  gives), one with a proof is bound, so each refresh at ``/oauth/token`` needs a proof by that key;
- other clients and the built-in one still log in without a proof.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from keyturn.client import DpopKey

from ._server import Cluster, cluster, run_cli


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("dpopclient") / "data"
    with cluster(data_dir, 1) as group:
        added = run_cli(data_dir, "clients", "add", "strict", "--dpop", "required")
        assert added.returncode == 0, added.stderr
        assert "(DPoP required)" in added.stdout
        assert run_cli(data_dir, "clients", "add", "lax").returncode == 0
        yield group


def test_clients_list_shows_each_clients_policy_and_off_refuses_required(service: Cluster) -> None:
    listed = run_cli(service.data_dir, "clients", "list")
    assert listed.returncode == 0, listed.stderr
    rows = [[*line.split("\t")[:2], line.split("\t")[3]] for line in listed.stdout.splitlines()]
    assert rows == [
        ["CLIENT", "TYPE", "DPOP"],
        ["keyturn", "public", "optional"],
        ["lax", "public", "optional"],
        ["strict", "public", "required"],
    ]
    refused = run_cli(
        service.data_dir, "clients", "add", "other", "--dpop", "required", env={"KEYTURN_DPOP": "off"}
    )
    assert refused.returncode == 2
    assert "KEYTURN_DPOP" in refused.stderr
    assert "other" not in run_cli(service.data_dir, "clients", "list").stdout


def login(http: httpx.Client, group: Cluster, proof: str | None = None, **extra: str) -> httpx.Response:
    body = {"username": group.username, "password": group.password, **extra}
    return http.post("/auth/login", json=body, headers={"DPoP": proof} if proof else {})


def test_a_required_clients_session_starts_only_with_a_proof_and_refreshes_only_with_one(
    service: Cluster,
) -> None:
    url = service.server.url
    key = DpopKey.generate()
    with service.server.client() as http:
        refused = login(http, service, client_id="strict")
        assert (refused.status_code, refused.json()["error"]) == (400, "invalid_dpop_proof")
        for others in ({"client_id": "lax"}, {}):
            assert login(http, service, **others).status_code == 200

        started = login(
            http, service, key.proof("POST", url + "/auth/login", now=time.time()), client_id="strict"
        )
        assert started.status_code == 200, started.text
        grant = {"grant_type": "refresh_token", "refresh_token": started.json()["refresh_token"]}
        grant["client_id"] = "strict"
        bare = http.post("/oauth/token", data=grant)
        assert (bare.status_code, bare.json()["error"]) == (400, "invalid_grant")
        assert bare.json()["keyturn_error"] == "refresh_token_bound"
        proof = key.proof("POST", url + "/oauth/token", now=time.time())
        rotated = http.post("/oauth/token", data=grant, headers={"DPoP": proof})
        assert rotated.status_code == 200, rotated.text
