"""Each Keyturn route answers its errors in the form its router chose once: Keyturn's own on
``KeyturnRoute``, RFC 6749 section 5.2's on ``OAuthRoute``; the application's own routes keep FastAPI's."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, HTTPException
from pydantic import BaseModel

from keyturn.errors import TokenInvalid
from keyturn.server.errors import KeyturnRoute, OAuthRoute

pytestmark = pytest.mark.anyio


class Body(BaseModel):
    token: str


def _routes(route_class: type[KeyturnRoute]) -> APIRouter:
    router = APIRouter(route_class=route_class)

    @router.post("/refused")
    async def refused() -> None:
        raise TokenInvalid("The token is malformed.")

    @router.post("/validated")
    async def validated(body: Body) -> dict[str, str]:
        return {"token": body.token}

    @router.post("/gone")
    async def gone() -> None:
        raise HTTPException(410, "Gone")

    return router


def app() -> FastAPI:
    """Keyturn's routes at /auth, the OAuth 2.0 ones at /oauth, and one of the application's own."""
    application = FastAPI()
    application.include_router(_routes(KeyturnRoute), prefix="/auth")
    application.include_router(_routes(OAuthRoute), prefix="/oauth")

    @application.post("/own")
    async def own(body: Body) -> dict[str, str]:
        return {"token": body.token}

    return application


async def answers(path: str, method: str = "POST") -> tuple[int, dict[str, Any], httpx.Headers]:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://keyturn.test") as http:
        response = await http.request(method, path, json={})
    return response.status_code, response.json(), response.headers


@pytest.mark.parametrize(
    ("path", "method", "status", "code"),
    [
        ("/refused", "POST", 401, "token_invalid"),
        ("/validated", "POST", 400, "invalid_request"),
        ("/gone", "POST", 410, "invalid_request"),
        ("/gone", "GET", 405, "invalid_request"),
    ],
)
async def test_a_keyturn_route_answers_in_keyturns_form(
    path: str, method: str, status: int, code: str, anyio_backend: str
) -> None:
    """Keyturn's clients act on ``error``: its own code, and the 401's bearer challenge."""
    got, body, headers = await answers("/auth" + path, method)

    assert (got, body["error"]) == (status, code)
    assert "keyturn_error" not in body
    assert headers["cache-control"] == "no-store"
    if status == 401:
        assert headers["www-authenticate"].startswith('Bearer realm="keyturn", error="invalid_token"')


@pytest.mark.parametrize(
    ("path", "method", "status", "error", "code"),
    [
        ("/refused", "POST", 400, "invalid_grant", "token_invalid"),
        ("/validated", "POST", 400, "invalid_request", "invalid_request"),
        ("/gone", "POST", 410, "invalid_request", "invalid_request"),
        ("/gone", "GET", 405, "invalid_request", "invalid_request"),
    ],
)
async def test_an_oauth_route_answers_in_rfc_6749s_form(
    path: str, method: str, status: int, error: str, code: str, anyio_backend: str
) -> None:
    """OAuth clients act on the RFC's ``error`` and status; Keyturn's code stands beside it, and a refused
    grant carries no bearer challenge."""
    got, body, headers = await answers("/oauth" + path, method)

    assert (got, body["error"], body["keyturn_error"]) == (status, error, code)
    assert "www-authenticate" not in headers


async def test_the_applications_own_route_keeps_fastapis_answer(anyio_backend: str) -> None:
    """Including Keyturn's routers changes nothing of the application's own error handling."""
    got, body, _ = await answers("/own")

    assert got == 422
    assert "detail" in body
