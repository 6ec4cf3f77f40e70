"""A token presented in the ``DPoP`` scheme is refused in that scheme (RFC 9449 section 7.1): expired,
revoked or invalid, or short of a scope (403), the error goes in the ``DPoP`` challenge, alone, at every
adapter (the ASGI and WSGI middleware, FastAPI's ``require_token``), as the one renderer writes it once the
adapter passes the request's ``Authorization`` (``ErrorForm.presented``). A Bearer token keeps its
``Bearer`` challenge (and ``DPoP`` beside it, section 7.2)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from keyturn.client.dpop import DpopKey
from keyturn.middleware.asgi import KeyturnMiddleware
from keyturn.middleware.fastapi import install, require_token
from keyturn.middleware.verifier import AccessTokenVerifier
from keyturn.middleware.wsgi import KeyturnWSGIMiddleware
from keyturn.testing import TestService
from keyturn.tokens import AccessClaims

from .._challenges import ALGS, challenges

pytestmark = pytest.mark.anyio

URL = "http://testserver/orders"
DPOP_ONLY = {"realm": "keyturn", "algs": ALGS}


@dataclass
class Scene:
    ts: TestService
    verifier: AccessTokenVerifier
    key: DpopKey

    def token(self, *, bound: bool = True, expired: bool = False, scope: str = "orders:read") -> str:
        now = int(self.ts.clock.now())
        claims: dict[str, Any] = {"scope": scope}
        if bound:
            claims["cnf"] = {"jkt": self.key.thumbprint}
        if expired:
            claims |= {"iat": now - 3600, "exp": now - 600}
        return self.ts.tokens.access_token(self.ts.tokens.access_claims(**claims))

    def as_dpop(self, token: str, method: str = "GET") -> dict[str, str]:
        proof = self.key.proof(method, URL, now=self.ts.clock.now(), access_token=token)
        return {"Authorization": f"DPoP {token}", "DPoP": proof}


@pytest.fixture
async def scene(ts: TestService) -> AsyncIterator[Scene]:
    verifier = AccessTokenVerifier.for_store(ts.store, clock=ts.clock)
    try:
        yield Scene(ts, verifier, DpopKey.generate())
    finally:
        verifier.close()


def dpop_refusal(response: httpx.Response, error: str, status: int = 401) -> dict[str, str]:
    """The one ``DPoP`` challenge of ``response``, which carries ``error``; its parameters."""
    assert response.status_code == status, response.text
    ((scheme, params),) = challenges(response.headers["www-authenticate"])
    assert (scheme, params["error"]) == ("DPoP", error)
    assert {k: params[k] for k in DPOP_ONLY} == DPOP_ONLY
    return params


async def asgi_get(scene: Scene, headers: dict[str, str]) -> httpx.Response:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    transport = httpx.ASGITransport(app=KeyturnMiddleware(app, scene.verifier))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return await http.get("/orders", headers=headers)


def wsgi_get(scene: Scene, headers: dict[str, str]) -> httpx.Response:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    transport = httpx.WSGITransport(app=KeyturnWSGIMiddleware(app, scene.verifier))
    with httpx.Client(transport=transport, base_url="http://testserver") as http:
        return http.get("/orders", headers=headers)


@pytest.mark.parametrize("adapter", ["asgi", "wsgi"])
async def test_an_expired_token_presented_as_dpop_is_refused_in_the_dpop_challenge(
    scene: Scene, adapter: str
) -> None:
    """RFC 9449 section 7.1's example: ``DPoP error="invalid_token", error_description=..., algs=...``;
    the Bearer challenge used to carry it, though the client had not used that scheme."""
    token = scene.token(expired=True)
    headers = scene.as_dpop(token)
    answer = await asgi_get(scene, headers) if adapter == "asgi" else wsgi_get(scene, headers)

    params = dpop_refusal(answer, "invalid_token")
    assert params["error_description"].startswith("token_expired: ")
    assert answer.json()["error"] == "token_expired"


async def test_an_invalid_token_presented_as_dpop_is_refused_in_the_dpop_challenge(scene: Scene) -> None:
    params = dpop_refusal(await asgi_get(scene, scene.as_dpop("not-a-token")), "invalid_token")
    assert params["error_description"].startswith("token_invalid: ")


async def test_a_bearer_token_keeps_its_bearer_challenge(scene: Scene) -> None:
    """Section 7.2's second example, as before: the error in Bearer, then DPoP with ``algs`` alone."""
    answer = await asgi_get(scene, {"Authorization": f"Bearer {scene.token(bound=False, expired=True)}"})

    (scheme, params), *rest = challenges(answer.headers["www-authenticate"])
    assert (answer.status_code, scheme, params["error"]) == (401, "Bearer", "invalid_token")
    assert rest == [("DPoP", DPOP_ONLY)]


async def test_insufficient_scope_is_challenged_in_the_scheme_used(scene: Scene) -> None:
    """403 ``insufficient_scope`` (RFC 6750 section 3.1) in ``DPoP`` for a bound token presented as DPoP,
    in ``Bearer`` for a bearer token: it used to be ``Bearer`` always."""
    app = FastAPI()
    install(app)
    guard = Depends(require_token(scene.verifier, scopes=["orders:write"]))

    @app.get("/orders")
    async def orders(token: AccessClaims = guard) -> dict[str, str]:
        return {"user": token.sub}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        bound = await http.get("/orders", headers=scene.as_dpop(scene.token()))
        plain = await http.get("/orders", headers={"Authorization": f"Bearer {scene.token(bound=False)}"})

    dpop_refusal(bound, "insufficient_scope", status=403)
    assert bound.json()["error"] == "insufficient_scope"
    assert plain.status_code == 403
    assert challenges(plain.headers["www-authenticate"]) == [
        ("Bearer", {"realm": "keyturn", "error": "insufficient_scope"})
    ]
