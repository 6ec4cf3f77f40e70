"""``CORS_ORIGINS``: the token service's app (``create_app``, behind ``keyturn serve``'s login gate) answers
CORS for the listed origins only, with credentials, outermost; unset, it sends no CORS header at all.

The app is called in this process (httpx's ASGI transport, the real app on a real runtime); the browser's
side is ``tests/browser/test_cors.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
import pytest

from keyturn.errors import Overloaded
from keyturn.server.app import create_app
from keyturn.server.demo import SECURITY_HEADERS
from keyturn.server.routes._common import cookie_name
from keyturn.server.runtime import Runtime, open_runtime
from keyturn.server.token_reply import CSRF_HEADER
from keyturn.testing import fast_hasher, make_settings
from keyturn.users import LoginAdmission

from .._challenges import challenges
from .test_front import client, framework_layers, served

pytestmark = pytest.mark.anyio

PAGE = "https://app.example.com"
OTHER = "https://evil.example.net"


@asynccontextmanager
async def service(**settings: object) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    """The app ``keyturn serve`` serves, on a memory store, and a client calling it."""
    runtime = await open_runtime(make_settings(**settings), hasher=fast_hasher(), subject_check=None)
    try:
        app = create_app(runtime=runtime)
        async with app.router.lifespan_context(app), client(served(app)) as http:
            yield http, runtime
    finally:
        await runtime.close()


def preflight(
    origin: str, method: str = "POST", headers: str = "content-type, dpop, x-keyturn-csrf"
) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


def cors_headers(answer: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in answer.headers.items() if name.startswith("access-control-")}


def listed(values: str) -> set[str]:
    return {value.strip().lower() for value in values.split(",")}


async def test_a_listed_origins_preflight_is_approved_with_credentials() -> None:
    async with service(cors_origins=f"{PAGE},https://other.example.com") as (http, _):
        answer = await http.options("/auth/refresh", headers=preflight(PAGE))
        delete = await http.options("/auth/sessions/abc", headers=preflight(PAGE, "DELETE", "authorization"))
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == PAGE
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert {"authorization", "content-type", "dpop", "x-keyturn-csrf"} <= listed(
        answer.headers["access-control-allow-headers"]
    )
    assert listed(answer.headers["access-control-allow-methods"]) == {"get", "head", "post", "delete"}
    assert answer.headers["access-control-max-age"] == "600"
    assert delete.status_code == 200, delete.text
    assert delete.headers["access-control-allow-origin"] == PAGE


async def test_an_unlisted_origin_is_allowed_nothing() -> None:
    async with service(cors_origins=PAGE) as (http, runtime):
        pair = await runtime.sessions.start("alice")
        answer = await http.options("/auth/refresh", headers=preflight(OTHER))
        # A page on another origin that is the same site as a listed one, and the listed one over http.
        sibling = await http.options("/auth/refresh", headers=preflight("https://app.example.com.evil.net"))
        plain = await http.options("/auth/refresh", headers=preflight("http://app.example.com"))
        refresh = await http.post(
            "/auth/refresh", json={"refresh_token": pair.refresh_token}, headers={"Origin": OTHER}
        )
    for refused in (answer, sibling, plain):
        assert refused.status_code == 400, refused.text
        assert "access-control-allow-origin" not in refused.headers
    # The refresh itself is answered (the browser, not the service, keeps its answer from the page)...
    assert refresh.status_code == 200, refresh.text
    # ...with nothing that lets the page read it.
    assert "access-control-allow-origin" not in refresh.headers
    assert "Origin" in refresh.headers["vary"]


async def test_a_refresh_in_cookie_mode_from_a_listed_origin_carries_the_cors_headers() -> None:
    async with service(cors_origins=PAGE) as (http, runtime):
        pair = await runtime.sessions.start("alice")
        with framework_layers() as layers:
            answer = await http.post(
                "/auth/refresh",
                headers={
                    "Origin": PAGE,
                    CSRF_HEADER: "1",
                    "Cookie": f"{cookie_name(runtime)}={pair.refresh_token}",
                },
            )
        refused = await http.get("/auth/me", headers={"Origin": PAGE, "Authorization": "Bearer nope"})
    assert answer.status_code == 200, answer.text
    assert "refresh_token" not in answer.json()  # cookie mode
    assert answer.headers["set-cookie"].startswith(f"{cookie_name(runtime)}=")
    assert answer.headers["access-control-allow-origin"] == PAGE
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert listed(answer.headers["access-control-expose-headers"]) == {
        "dpop-nonce",
        "retry-after",
        "www-authenticate",
    }
    assert "Origin" in answer.headers["vary"]
    # CORS sits in front of the refresh's short path: no FastAPI or Starlette layer but CORS's own.
    assert layers == {"CORSMiddleware.__call__"}
    # An error (here from FastAPI's stack, not the short path) carries them too, so the page reads it.
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == PAGE
    assert "www-authenticate" in refused.headers
    # Both challenges in that one exposed field (RFC 9449 sections 7.1 and 7.2), so the page reads DPoP's too.
    assert [scheme for scheme, _ in challenges(refused.headers["www-authenticate"])] == ["Bearer", "DPoP"]


@contextmanager
def login_queue_full(runtime: Runtime) -> Iterator[None]:
    """Every place in the login queue taken, as by logins in flight."""
    held: list[LoginAdmission] = []
    try:
        while True:
            assert len(held) < 100_000, "the login queue never filled"
            try:
                held.append(runtime.users.admit_login())
            except Overloaded:
                break
        yield
    finally:
        for admission in held:
            admission.__exit__(None, None, None)


async def test_the_login_gates_503_carries_the_cors_headers() -> None:
    async with service(cors_origins=PAGE) as (http, runtime):
        with login_queue_full(runtime):
            answer = await http.post(
                "/auth/login", json={"username": "alice", "password": "x"}, headers={"Origin": PAGE}
            )
    assert answer.status_code == 503, answer.text
    assert answer.headers["access-control-allow-origin"] == PAGE
    assert "retry-after" in listed(answer.headers["access-control-expose-headers"])


async def test_unset_no_cors_header_at_all() -> None:
    async with service() as (http, runtime):
        assert runtime.settings.cors_origins == ()
        pair = await runtime.sessions.start("alice")
        answers = [
            await http.options("/auth/refresh", headers=preflight(PAGE)),
            await http.post(
                "/auth/refresh", json={"refresh_token": pair.refresh_token}, headers={"Origin": PAGE}
            ),
            await http.get("/auth/me", headers={"Origin": PAGE, "Authorization": "Bearer nope"}),
            await http.get("/.well-known/jwks.json", headers={"Origin": PAGE}),
        ]
        with login_queue_full(runtime):
            answers.append(await http.post("/auth/login", json={}, headers={"Origin": PAGE}))
    assert [answer.status_code for answer in answers] == [405, 200, 401, 200, 503]
    for answer in answers:
        assert cors_headers(answer) == {}
        assert "origin" not in answer.headers.get("vary", "").lower()


async def test_the_demo_pages_security_headers_are_unchanged() -> None:
    """The demo page stays a same-origin page: its Content-Security-Policy (``connect-src 'self'``) is the
    same with CORS on, and a listed origin's call for it only adds CORS's headers."""
    async with service() as (http, _):
        plain = await http.get("/demo/")
    async with service(cors_origins=PAGE) as (http, _):
        crossed = await http.get("/demo/", headers={"Origin": PAGE})
    assert plain.status_code == crossed.status_code == 200
    for name in SECURITY_HEADERS:
        assert crossed.headers[name] == plain.headers[name] == SECURITY_HEADERS[name]
    assert crossed.headers["access-control-allow-origin"] == PAGE
