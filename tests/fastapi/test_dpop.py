"""An application's own login (``Keyturn.start`` through the ``authenticate`` hook) binds the session it
starts to the key of the request's DPoP proof, as ``/auth/login`` does (RFC 9449)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request

from keyturn import fastapi as keyturn
from keyturn.client.dpop import DpopKey
from keyturn.testing import make_settings

from .._threaded import serving


def test_a_session_started_by_the_apps_own_login_is_bound(tmp_path: Path) -> None:
    app = Starlette()

    def authenticate(request: Request, credentials: dict[str, object]) -> str | None:
        return "u1" if credentials == {"code": "123456"} else None

    settings = make_settings(store_url=f"sqlite:///{tmp_path / 'k.db'}")
    keyturn.install(app, settings=settings, authenticate=authenticate, prefix="/session")
    key = DpopKey.generate()
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        login_proof = {"DPoP": key.proof("POST", url + "/session/login", now=time.time())}
        pair = http.post("/session/login", json={"code": "123456"}, headers=login_proof).json()
        bare = http.post("/session/refresh", json={"refresh_token": pair["refresh_token"]})
        assert (bare.status_code, bare.json()["error"]) == (401, "refresh_token_bound")
        proof = {"DPoP": key.proof("POST", url + "/session/refresh", now=time.time())}
        rotated = http.post("/session/refresh", json={"refresh_token": pair["refresh_token"]}, headers=proof)
        assert rotated.status_code == 200, rotated.text
