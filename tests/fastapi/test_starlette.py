"""``keyturn.fastapi.install`` in a plain Starlette app: the same routes, lifespan and in-process verifier."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from keyturn import fastapi as keyturn
from keyturn.middleware.asgi import KeyturnMiddleware
from keyturn.testing import make_settings

from .._threaded import serving
from ..e2e._http import assert_error, bearer


def test_a_starlette_app_serves_the_sessions_and_guards_its_routes(tmp_path: Path) -> None:
    """Login through the app's hook, refresh through the hot path, a guarded mount, logout reaching it."""
    started: list[bool] = []

    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.state.keyturn.sub})

    app = Starlette()

    def authenticate(request: Request, credentials: dict[str, object]) -> str | None:
        started.append(True)
        return "u1" if credentials == {"code": "123456"} else None

    settings = make_settings(store_url=f"sqlite:///{tmp_path / 'k.db'}", revocation_poll_interval=0.2)
    auth = keyturn.install(app, settings=settings, authenticate=authenticate, prefix="/session")
    app.mount("/api", KeyturnMiddleware(Starlette(routes=[Route("/hello", hello)]), auth.verifier))

    with serving(app) as url:
        _walk(httpx.Client(base_url=url))
    assert started == [True, True]


def _walk(client: httpx.Client) -> None:
    with client as http:
        assert_error(http.post("/session/login", json={"code": "000000"}), 401, "invalid_credentials")
        tokens = http.post("/session/login", json={"code": "123456"}).json()
        rotated = http.post("/session/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert rotated.status_code == 200, rotated.text
        # The OAuth 2.0 surface is there too, at the root, answering in RFC 6749's form.
        grant = {"grant_type": "refresh_token", "refresh_token": rotated.json()["refresh_token"]}
        oauth = http.post("/oauth/token", data=grant)
        assert oauth.status_code == 200, oauth.text
        metadata = http.get("/.well-known/oauth-authorization-server").json()
        assert metadata["token_endpoint"] == str(http.base_url).rstrip("/") + "/oauth/token"
        missing = http.post("/oauth/nothing-here")
        assert missing.status_code == 404
        assert missing.json()["keyturn_error"] == "invalid_request"
        access = bearer(oauth.json()["access_token"])
        assert http.get("/api/hello", headers=access).json() == {"user": "u1"}
        assert_error(http.get("/api/hello"), 401, "token_invalid", bare=True)
        assert http.post("/session/logout", headers=access).status_code == 200
        for _ in range(100):
            if http.get("/api/hello", headers=access).status_code == 401:
                break
            time.sleep(0.05)
        assert_error(http.get("/api/hello", headers=access), 401, "token_revoked")
