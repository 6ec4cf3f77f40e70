"""CORS in front of the resource-server middleware (docs/resource-servers.md, "CORS"), over real HTTP.

A browser's preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) never carries
credentials, so the app's CORS middleware must answer it before Keyturn's sees it: with Starlette's
``add_middleware`` the one added last is the outermost. In the documented order the preflight is answered
200 with the CORS headers, a cross-origin request without a token is still 401 (and readable by the page:
it carries ``Access-Control-Allow-Origin`` too), and one with a token gets in. The other order refuses the
preflight, which is why the order is documented.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from keyturn import fastapi as keyturn
from keyturn.middleware.asgi import KeyturnMiddleware
from keyturn.middleware.verifier import AccessTokenVerifier
from keyturn.testing import make_settings

from .._threaded import serving
from ..e2e._http import assert_error, bearer

ORIGIN = "https://app.example"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "authorization",
}


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.state.keyturn.sub})


def api(verifier: AccessTokenVerifier, *, cors_outside: bool) -> Starlette:
    """The protected app, its CORS middleware outside Keyturn's (the documented order) or inside it."""
    app = Starlette(routes=[Route("/hello", hello)])
    if not cors_outside:
        add_cors(app)
    app.add_middleware(KeyturnMiddleware, verifier=verifier)
    if cors_outside:
        add_cors(app)  # added last: the outermost
    return app


def add_cors(app: Starlette) -> None:
    app.add_middleware(
        CORSMiddleware, allow_origins=[ORIGIN], allow_headers=["Authorization"], allow_methods=["GET"]
    )


@pytest.mark.parametrize("cors_outside", [True, False], ids=["documented-order", "keyturn-outside"])
def test_a_preflight_is_answered_only_with_cors_outside_keyturn(tmp_path: Path, cors_outside: bool) -> None:
    app = Starlette()
    settings = make_settings(store_url=f"sqlite:///{tmp_path / 'k.db'}")
    auth = keyturn.install(app, settings=settings, authenticate=lambda request, credentials: "u1")
    app.mount("/api", api(auth.verifier, cors_outside=cors_outside))

    with serving(app) as url, httpx.Client(base_url=url) as http:
        access = bearer(http.post("/auth/login", json={"code": "123456"}).json()["access_token"])
        preflight = http.options("/api/hello", headers=PREFLIGHT)
        if not cors_outside:
            assert_error(preflight, 401, "token_invalid", bare=True)  # the browser never sends the GET
            return
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert "GET" in preflight.headers["access-control-allow-methods"]
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()

        refused = http.get("/api/hello", headers={"Origin": ORIGIN})
        assert_error(refused, 401, "token_invalid", bare=True)
        assert refused.headers["access-control-allow-origin"] == ORIGIN  # the page can read the refusal

        admitted = http.get("/api/hello", headers={"Origin": ORIGIN, **access})
        assert admitted.status_code == 200, admitted.text
        assert admitted.json() == {"user": "u1"}
        assert admitted.headers["access-control-allow-origin"] == ORIGIN
