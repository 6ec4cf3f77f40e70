"""``server.shortcut``: the hot path goes straight to its endpoint, and answers as the route would."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from keyturn.errors import RateLimited, ServerError, TokenInvalid
from keyturn.server import errors
from keyturn.server.app import create_app
from keyturn.server.body_limit import BodySizeLimit
from keyturn.server.runtime import Runtime, open_runtime
from keyturn.server.shortcut import Shortcut
from keyturn.testing import fast_hasher, make_settings

pytestmark = pytest.mark.anyio


def app_with(endpoint: object, *, route_calls: list[str]) -> FastAPI:
    """A FastAPI app with the service's error handling, a route at ``/x`` and the shortcut for POST /x."""
    app = FastAPI()
    errors.install(app)

    @app.api_route("/x", methods=["GET", "POST"])
    async def route(request: Request) -> Response:
        route_calls.append(request.method)
        return JSONResponse({"via": "route"})

    app.add_middleware(Shortcut, endpoints={("POST", "/x"): endpoint})
    app.add_middleware(BodySizeLimit, max_bytes=16)
    return app


def client(app: FastAPI, *, root_path: str = "") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url="http://keyturn.test")


async def test_the_shortcut_answers_its_call_and_passes_every_other_on(anyio_backend: str) -> None:
    seen: list[str] = []

    async def endpoint(request: Request) -> Response:
        seen.append((await request.body()).decode())
        return JSONResponse({"via": "shortcut"})

    route_calls: list[str] = []
    async with client(app_with(endpoint, route_calls=route_calls)) as http:
        assert (await http.post("/x", content=b"hello")).json() == {"via": "shortcut"}
        assert (await http.get("/x")).json() == {"via": "route"}  # another method
        assert (await http.post("/y")).status_code == 404  # another path: the router's answer
    assert seen == ["hello"]
    assert route_calls == ["GET"]


async def test_the_shortcut_matches_below_a_root_path(anyio_backend: str) -> None:
    """Behind a proxy that mounts the app at /api, POST /api/x is the shortcut's call, as for the route."""

    async def endpoint(request: Request) -> Response:
        return JSONResponse({"via": "shortcut"})

    async with client(app_with(endpoint, route_calls=[]), root_path="/api") as http:
        assert (await http.post("/api/x")).json() == {"via": "shortcut"}


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [(TokenInvalid(), 401, "token_invalid"), (RateLimited(retry_after=2.5), 429, "rate_limited")],
)
async def test_a_keyturn_error_gets_the_one_error_body(
    anyio_backend: str, error: Exception, status: int, code: str
) -> None:
    async def endpoint(request: Request) -> Response:
        raise error

    async with client(app_with(endpoint, route_calls=[])) as http:
        answer = await http.post("/x")
    assert answer.status_code == status
    assert answer.json()["error"] == code
    expected = errors.render(error).headers
    for name in ("www-authenticate", "retry-after", "content-type"):
        assert answer.headers.get(name) == expected.get(name)


async def test_a_server_error_is_logged_by_type_and_answered_503(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def endpoint(request: Request) -> Response:
        raise ServerError() from OSError("disk on fire")

    async with client(app_with(endpoint, route_calls=[])) as http:
        answer = await http.post("/x")
    assert (answer.status_code, answer.json()["error"]) == (500, "server_error")
    assert "store or service failure: OSError" in caplog.text
    assert "disk on fire" not in caplog.text


async def test_an_unexpected_exception_is_the_500_error_body(anyio_backend: str) -> None:
    async def endpoint(request: Request) -> Response:
        raise RuntimeError("a bug")

    async with client(app_with(endpoint, route_calls=[])) as http:
        answer = await http.post("/x")
    assert answer.status_code == 500
    assert answer.json() == {
        "error": "server_error",
        "error_description": ServerError.description,
        "retryable": True,
    }


async def test_a_body_over_the_cap_is_refused_before_the_shortcut(anyio_backend: str) -> None:
    called: list[bool] = []

    async def endpoint(request: Request) -> Response:
        called.append(True)
        await request.body()
        return JSONResponse({})

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"0123456789"

    async with client(app_with(endpoint, route_calls=[])) as http:
        declared = await http.post("/x", content=b"x" * 17)
        chunked = await http.post("/x", content=chunks())
    assert (declared.status_code, declared.json()["error"]) == (413, "invalid_request")
    assert called == [True]  # the chunked one reached the endpoint and was cut off while it read
    assert (chunked.status_code, chunked.json()["error"]) == (413, "invalid_request")


@pytest.fixture
async def runtime(anyio_backend: str) -> AsyncIterator[Runtime]:
    rt = await open_runtime(make_settings(route_prefix="/tokens"), hasher=fast_hasher(), subject_check=None)
    try:
        yield rt
    finally:
        await rt.close()


async def test_the_service_takes_the_refresh_shortcut_under_its_prefix(runtime: Runtime) -> None:
    """The app's refresh calls reach the endpoint through the shortcut, not the router: with the routers of
    /tokens/* gone, a refresh still rotates, and the metrics count it."""
    app = create_app(runtime=runtime)
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) is not None]
    first = await runtime.sessions.start("alice")
    async with app.router.lifespan_context(app), client(app) as http:
        assert (await http.post("/tokens/logout")).status_code == 404  # no route for the others
        answer = await http.post("/tokens/refresh", json={"refresh_token": first.refresh_token})
        assert answer.status_code == 200, answer.text
        assert answer.json()["refresh_token"] != first.refresh_token
        assert (await http.post("/tokens/refresh", json={"refresh_token": 5})).status_code == 400
    metrics = app.state.metrics.render().decode()
    assert 'keyturn_refresh_total{outcome="ok"} 1.0' in metrics
    assert 'keyturn_refresh_total{outcome="invalid_request"} 1.0' in metrics
    # The route documents the call.
    assert "/tokens/refresh" in create_app(runtime=runtime).openapi()["paths"]


async def test_a_client_gone_mid_body_is_answered_quietly(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """As the routes' handlers answer it: no server error, nothing logged above debug."""

    async def endpoint(request: Request) -> Response:
        raise ClientDisconnect

    async with client(app_with(endpoint, route_calls=[])) as http:
        answer = await http.post("/x")
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
