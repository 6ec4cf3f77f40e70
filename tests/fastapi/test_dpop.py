"""An application's own login (``Keyturn.start`` through the ``authenticate`` hook) binds the session it
starts to the key of the request's DPoP proof, as ``/auth/login`` does (RFC 9449)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request

from keyturn import fastapi as keyturn
from keyturn.client.dpop import DpopKey
from keyturn.testing import make_settings

from ..e2e._server import free_port


def test_a_session_started_by_the_apps_own_login_is_bound(tmp_path: Path) -> None:
    app = Starlette()

    def authenticate(request: Request, credentials: dict[str, object]) -> str | None:
        return "u1" if credentials == {"code": "123456"} else None

    settings = make_settings(store_url=f"sqlite:///{tmp_path / 'k.db'}")
    keyturn.install(app, settings=settings, authenticate=authenticate, prefix="/session")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    key = DpopKey.generate()
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            login_proof = {"DPoP": key.proof("POST", url + "/session/login", now=time.time())}
            pair = http.post("/session/login", json={"code": "123456"}, headers=login_proof).json()
            bare = http.post("/session/refresh", json={"refresh_token": pair["refresh_token"]})
            assert (bare.status_code, bare.json()["error"]) == (401, "refresh_token_bound")
            proof = {"DPoP": key.proof("POST", url + "/session/refresh", now=time.time())}
            rotated = http.post(
                "/session/refresh", json={"refresh_token": pair["refresh_token"]}, headers=proof
            )
            assert rotated.status_code == 200, rotated.text
    finally:
        server.should_exit = True
        thread.join(30)
