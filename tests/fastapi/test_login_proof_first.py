"""Every login checks the request's DPoP proof (and its nonce) before any credential: a bad or replayed
proof costs no password hash and learns nothing of whether the password was right (regression: the
application's ``authenticate`` hook was called first, the built-in login's hash was not)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request

from keyturn import fastapi as keyturn
from keyturn.client.dpop import DpopKey
from keyturn.server.app import create_app
from keyturn.server.runtime import Runtime, open_runtime
from keyturn.testing import make_settings

from .._hashers import CountingHasher
from .._threaded import serving

GOOD = {"username": "alice", "password": "right horse battery"}


def test_the_apps_login_refuses_a_bad_or_replayed_proof_before_calling_authenticate(tmp_path: Path) -> None:
    calls: list[dict[str, object]] = []

    def authenticate(request: Request, credentials: dict[str, object]) -> str | None:
        calls.append(credentials)
        return "u1" if credentials == GOOD else None

    app = Starlette()
    settings = make_settings(store_url=f"sqlite:///{tmp_path / 'k.db'}")
    keyturn.install(app, settings=settings, authenticate=authenticate)
    key = DpopKey.generate()
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        wrong_url = {"DPoP": key.proof("POST", url + "/auth/refresh", now=time.time())}
        for body in (GOOD, {**GOOD, "password": "wrong"}):
            refused = http.post("/auth/login", json=body, headers=wrong_url)
            assert refused.json()["error"] == "invalid_dpop_proof", refused.text
        assert calls == []
        proof = {"DPoP": key.proof("POST", url + "/auth/login", now=time.time())}
        assert http.post("/auth/login", json=GOOD, headers=proof).status_code == 200
        replayed = http.post("/auth/login", json=GOOD, headers=proof)
        assert replayed.json()["error"] == "invalid_dpop_proof", replayed.text
        assert calls == [GOOD]


def test_the_apps_login_asks_for_the_nonce_before_calling_authenticate(tmp_path: Path) -> None:
    calls: list[dict[str, object]] = []

    def authenticate(request: Request, credentials: dict[str, object]) -> str | None:
        calls.append(credentials)
        return "u1"

    app = Starlette()
    settings = make_settings(store_url=f"sqlite:///{tmp_path / 'k.db'}", dpop_nonces=True)
    keyturn.install(app, settings=settings, authenticate=authenticate)
    key = DpopKey.generate()
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        proof = {"DPoP": key.proof("POST", url + "/auth/login", now=time.time())}
        refused = http.post("/auth/login", json=GOOD, headers=proof)
        assert refused.json()["error"] == "use_dpop_nonce", refused.text
        assert calls == []
        nonce = refused.headers["DPoP-Nonce"]
        proof = {"DPoP": key.proof("POST", url + "/auth/login", now=time.time(), nonce=nonce)}
        assert http.post("/auth/login", json=GOOD, headers=proof).status_code == 200
        assert calls == [GOOD]


@pytest.fixture
async def users_runtime(anyio_backend: str) -> AsyncIterator[tuple[Runtime, CountingHasher]]:
    hasher = CountingHasher()
    rt = await open_runtime(make_settings(), hasher=hasher, subject_check=None)
    try:
        await rt.users.add(GOOD["username"], GOOD["password"])
        yield rt, hasher
    finally:
        await rt.close()


async def test_the_built_in_login_refuses_a_bad_or_replayed_proof_before_the_hash(
    users_runtime: tuple[Runtime, CountingHasher],
) -> None:
    rt, hasher = users_runtime
    app = create_app(runtime=rt)
    key, url = DpopKey.generate(), "http://keyturn.test/auth/login"
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport) as http:
        wrong = {"DPoP": key.proof("POST", url + "x", now=time.time())}
        for body in (GOOD, {**GOOD, "password": "wrong"}):
            refused = await http.post(url, json=body, headers=wrong)
            assert refused.json()["error"] == "invalid_dpop_proof", refused.text
        assert hasher.verified == 0
        proof = {"DPoP": key.proof("POST", url, now=time.time())}
        assert (await http.post(url, json=GOOD, headers=proof)).status_code == 200
        replayed = await http.post(url, json=GOOD, headers=proof)
        assert replayed.json()["error"] == "invalid_dpop_proof", replayed.text
        assert hasher.verified == 1
