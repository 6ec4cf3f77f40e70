"""Methods on the service's routes (RFC 9110): every GET route answers HEAD too (section 9.1: a general
purpose server supports both), and a 405 names the methods the path takes in ``Allow`` (section 15.5.6),
in the error body of the route's form."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from keyturn.server.app import create_app
from keyturn.server.runtime import open_runtime
from keyturn.testing import fast_hasher, make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    rt = await open_runtime(make_settings(metrics=True, demo=True), hasher=fast_hasher())
    app = create_app(runtime=rt)
    transport = httpx.ASGITransport(app=app)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://keyturn.test") as client,
        ):
            yield client
    finally:
        await rt.close()


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/.well-known/jwks.json", 200),
        ("/.well-known/oauth-authorization-server", 200),
        ("/healthz", 200),
        ("/readyz", 200),
        ("/metrics", 200),
        ("/auth/revocations?since=0", 200),
        ("/auth/me", 401),  # no token: the GET's own answer, not a 405
        ("/auth/sessions", 400),
    ],
)
async def test_a_get_route_answers_head_as_it_answers_get(
    http: httpx.AsyncClient, path: str, status: int
) -> None:
    got = await http.get(path)
    head = await http.head(path)

    assert (got.status_code, head.status_code) == (status, status)
    assert head.headers.get("cache-control") == got.headers.get("cache-control")


@pytest.mark.parametrize(
    ("method", "path", "allow", "oauth"),
    [
        ("GET", "/auth/login", "POST", False),
        ("PUT", "/auth/me", "GET, HEAD", False),
        ("POST", "/auth/sessions", "GET, HEAD", False),
        ("GET", "/auth/sessions/abc", "DELETE", False),
        ("POST", "/.well-known/jwks.json", "GET, HEAD", False),
        ("POST", "/healthz", "GET, HEAD", False),
        ("DELETE", "/metrics", "GET, HEAD", False),
        ("POST", "/demo/", "GET, HEAD", False),
        ("GET", "/oauth/token", "POST", True),
        ("POST", "/.well-known/oauth-authorization-server", "GET, HEAD", True),
    ],
)
async def test_a_405_names_the_allowed_methods(
    http: httpx.AsyncClient, method: str, path: str, allow: str, oauth: bool
) -> None:
    response = await http.request(method, path)

    assert response.status_code == 405
    assert response.headers.get("allow") == allow
    assert response.json()["error"] == "invalid_request"
    assert ("keyturn_error" in response.json()) is oauth
    assert response.headers["cache-control"] == "no-store"
