"""DPoP (RFC 9449) against real ``keyturn serve`` processes and every middleware adapter (issue 17).

Two service processes share one SQLite file; access tokens are bound too (``DPOP_BIND_ACCESS_TOKENS``)
and live 4 s. The Python client, its key in a 0600 file beside its token file, keeps its session
refreshing and calls each resource app (FastAPI, Starlette, Flask, Django, DRF, Django under ASGI) with
``DPoP`` tokens. The refresh token copied out of the token file, presented to either process with no proof
or with another key's, is refused every time (``refresh_token_bound``) and the real session goes on; the
bound access token sent as Bearer, or with a replayed proof, is refused at every app.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from keyturn.client import DpopKey, FileTokenStore, KeyturnAuth, TokenManager

from ._client import Hooks, signed_in, wait_until_expired
from ._resource import ResourceApp, resource_apps
from ._server import Cluster, cluster
from .test_middleware_frameworks import APPS, PROTECTED, RESOURCE_ENV, Target

LIFETIME = 4


@dataclass
class World:
    service: Cluster
    apps: dict[str, ResourceApp]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("dpop")
    env = {
        "KEYTURN_ACCESS_TOKEN_LIFETIME": str(LIFETIME),
        "KEYTURN_LEEWAY": "0",
        "KEYTURN_DPOP_BIND_ACCESS_TOKENS": "true",
    }
    with (
        cluster(base / "data", 2, env) as service,
        resource_apps(APPS, service.server.url, base / "logs", RESOURCE_ENV) as apps,
    ):
        yield World(service, apps)


@pytest.fixture
def client(world: World, tmp_path: Path) -> Iterator[tuple[TokenManager, Hooks, Path]]:
    hooks = Hooks()
    file = tmp_path / "tokens.json"
    manager = signed_in(
        world.service.server.url,
        world.service.username,
        world.service.password,
        hooks,
        store=FileTokenStore(file),
        dpop=True,
    )
    with contextlib.closing(manager):
        yield manager, hooks, file


def stolen_refresh(file: Path) -> str:
    token: str = json.loads(file.read_text())["refresh_token"]
    return token


def test_a_copied_refresh_token_is_refused_every_time_and_the_session_keeps_refreshing(
    world: World, client: tuple[TokenManager, Hooks, Path]
) -> None:
    manager, hooks, file = client
    key_file = file.with_name(file.name + ".dpop.pem")
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    refreshes = 0
    for _ in range(3):
        stolen = stolen_refresh(file)
        for server in world.service.servers:
            thief = DpopKey.generate()
            with server.client() as http:
                for proof in (None, thief.proof("POST", server.url + "/auth/refresh", now=time.time())):
                    answer = http.post(
                        "/auth/refresh",
                        json={"refresh_token": stolen},
                        headers={"DPoP": proof} if proof else {},
                    )
                    assert answer.status_code == 401
                    assert answer.json()["error"] == "refresh_token_bound"
        wait_until_expired(manager)
        manager.access_token()
        assert stolen_refresh(file) != stolen
        refreshes += 1
    assert manager.refreshes == refreshes
    assert hooks.ended == []
    assert manager.state == "active"


def test_a_copied_refresh_token_cannot_end_or_list_the_sessions_without_its_key(
    world: World, client: tuple[TokenManager, Hooks, Path]
) -> None:
    """The thief gains nothing and the user loses nothing: without a proof by the session's key, the copy
    can neither log out, log out everywhere, list or end sessions, nor revoke (RFC 7009 answers 200 and
    revokes nothing); the real client keeps refreshing, and then logs out with its own proofs."""
    manager, hooks, file = client
    stolen = stolen_refresh(file)
    url = world.service.server.url
    thief = DpopKey.generate()
    with world.service.server.client() as http:
        for key in (None, thief):

            def proof(method: str, path: str, key: DpopKey | None = key) -> dict[str, str]:
                return {} if key is None else {"DPoP": key.proof(method, url + path, now=time.time())}

            refused = [
                http.post(
                    "/auth/logout", json={"refresh_token": stolen}, headers=proof("POST", "/auth/logout")
                ),
                http.post(
                    "/auth/logout-all",
                    json={"refresh_token": stolen},
                    headers=proof("POST", "/auth/logout-all"),
                ),
                http.get(
                    "/auth/sessions",
                    headers={"Authorization": f"Bearer {stolen}", **proof("GET", "/auth/sessions")},
                ),
            ]
            assert [(r.status_code, r.json()["error"]) for r in refused] == [(401, "refresh_token_bound")] * 3
            revoked = http.post("/auth/revoke", data={"token": stolen}, headers=proof("POST", "/auth/revoke"))
            assert revoked.status_code == 200
    wait_until_expired(manager)
    manager.access_token()
    assert stolen_refresh(file) != stolen
    assert hooks.ended == []
    assert manager.state == "active"
    last, owner = stolen_refresh(file), DpopKey.from_file(file.with_name(file.name + ".dpop.pem"))
    manager.logout()
    with world.service.server.client() as http:
        after = http.post(
            "/auth/refresh",
            json={"refresh_token": last},
            headers={"DPoP": owner.proof("POST", url + "/auth/refresh", now=time.time())},
        )
    assert (after.status_code, after.json()["error"]) == (401, "session_revoked")


def test_a_bound_access_token_sent_as_bearer_is_refused_by_the_service_as_by_resource_servers(
    world: World, client: tuple[TokenManager, Hooks, Path]
) -> None:
    """RFC 9449 section 7.2 at the service's own routes, as at every resource server: a copy of a bound
    access token sent as Bearer neither logs the user out nor reads ``/auth/me`` (``invalid_dpop_proof``),
    nor lists or ends sessions (which no access token does); the session keeps refreshing. Sent as
    ``DPoP`` with a proof of the owner's key for the call, it logs out."""
    manager, hooks, file = client
    stolen = manager.access_token()
    url = world.service.server.url
    for server in world.service.servers:
        with server.client() as http:
            bearer = {"Authorization": f"Bearer {stolen}"}
            refused = [http.post("/auth/logout", headers=bearer), http.get("/auth/me", headers=bearer)]
            assert [(r.status_code, r.json().get("error")) for r in refused] == [
                (401, "invalid_dpop_proof")
            ] * 2
            assert all(r.headers["www-authenticate"].startswith("DPoP ") for r in refused)
            managing = [
                http.post("/auth/logout-all", headers=bearer),
                http.get("/auth/sessions", headers=bearer),
            ]
            assert [(r.status_code, r.json().get("error")) for r in managing] == [
                (403, "insufficient_scope")
            ] * 2
    wait_until_expired(manager)
    access = manager.access_token()
    assert access != stolen
    assert hooks.ended == []
    assert manager.state == "active"
    owner = DpopKey.from_file(file.with_name(file.name + ".dpop.pem"))
    proof = owner.proof("POST", url + "/auth/logout", now=time.time(), access_token=access)
    with world.service.server.client() as http:
        ended = http.post("/auth/logout", headers={"Authorization": f"DPoP {access}", "DPoP": proof})
    assert ended.status_code == 200, ended.text
    assert len(ended.json()["revoked_sessions"]) == 1


@pytest.mark.parametrize("target", PROTECTED, ids=str)
def test_bound_access_tokens_reach_every_adapter_with_proofs_and_never_without(
    world: World, client: tuple[TokenManager, Hooks, Path], target: Target
) -> None:
    manager, _, _ = client
    app = world.apps[target.app]
    with httpx.Client(base_url=app.url, timeout=30, auth=KeyturnAuth(manager)) as http:
        admitted = http.get(target.path)
        assert admitted.status_code == 200, admitted.text
        sent = admitted.request.headers
        assert sent["Authorization"].startswith("DPoP ")
    token = sent["Authorization"].split(" ", 1)[1]
    with app.client() as raw:
        replayed = raw.get(target.path, headers={"Authorization": f"DPoP {token}", "DPoP": sent["DPoP"]})
        as_bearer = raw.get(target.path, headers={"Authorization": f"Bearer {token}"})
    for refused in (replayed, as_bearer):
        assert refused.status_code == 401
        assert "invalid_dpop_proof" in refused.text
