"""A resource server of the application's may demand DPoP nonces of its own (RFC 9449 section 9): it answers
401 ``WWW-Authenticate: DPoP error="use_dpop_nonce"`` with a ``DPoP-Nonce``, and the client's auth classes
(httpx sync and async, requests) send the request once more with a new proof carrying that nonce, then use
it for that server's later requests. Nonces are kept per origin: the token service's never goes to the
resource server, nor the resource server's to the token service. (Regression: the 401 was handed over, and
the token service's nonce went out in the resource server's proofs.)"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import anyio
import httpx
import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from keyturn.client import KeyturnAuth, KeyturnRequestsAuth, TokenManager
from keyturn.dpop import Nonces, ProofRules, check_proof
from keyturn.errors import InvalidDpopProof, UseDpopNonce

from .._threaded import serving
from ._client_live import Harness, LiveService, live_service

pytestmark = pytest.mark.anyio

MODES = ["httpx-sync", "httpx-async", "requests"]


@dataclass
class Resource:
    """A resource server that takes DPoP-bound access tokens only with a proof carrying its own nonce
    (checked by Keyturn's proof checker, on the service's clock); ``rotate``: a new nonce for every proof,
    so that no proof ever passes."""

    live: LiveService
    rotate: bool = False
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    nonces_sent: list[str | None] = field(default_factory=list)
    """The ``nonce`` claim of each proof that reached it, in order."""

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/orders", self.orders, methods=["GET", "POST"])])

    def nonce(self) -> str:
        return Nonces(self.key).current(self.live.clock.now())

    async def orders(self, request: Request) -> JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        proof = request.headers.get("dpop", "")
        payload = json.loads(base64.urlsafe_b64decode(proof.split(".")[1] + "==")) if proof else {}
        self.nonces_sent.append(payload.get("nonce"))
        if self.rotate:
            self.key = secrets.token_bytes(32)
        rules = ProofRules(nonces=Nonces(self.key))
        try:
            if scheme != "DPoP":
                raise InvalidDpopProof("A DPoP-bound token needs the DPoP scheme.")
            check_proof(
                proof,
                method=request.method,
                url=str(request.url),
                now=self.live.clock.now(),
                rules=rules,
                access_token=token,
            )
        except UseDpopNonce:
            challenge = 'DPoP error="use_dpop_nonce", error_description="Resource server requires nonce"'
            headers = {"WWW-Authenticate": challenge, "DPoP-Nonce": self.nonce()}
            return JSONResponse({"error": "use_dpop_nonce"}, status_code=401, headers=headers)
        except InvalidDpopProof:
            challenge = 'DPoP error="invalid_dpop_proof"'
            return JSONResponse({"error": "invalid_dpop_proof"}, 401, {"WWW-Authenticate": challenge})
        return JSONResponse({"ok": True, "method": request.method})


@pytest.fixture(scope="module")
def service() -> Iterator[LiveService]:
    """The token service with bound access tokens and nonces of its own."""
    with live_service(dpop_bind_access_tokens=True, dpop_nonces=True) as live:
        yield live


@pytest.fixture
async def h(service: LiveService, anyio_backend: str) -> AsyncIterator[Harness]:
    harness = Harness.on(service)
    yield harness
    await harness.aclose()


async def send(manager: TokenManager, mode: str, url: str, method: str = "GET") -> tuple[int, int]:
    """One request to ``url`` through the mode's auth class: its final status and how many answers the
    request got in all."""
    if mode == "httpx-async":
        async with httpx.AsyncClient(auth=KeyturnAuth(manager), timeout=30) as ahttp:
            answer = await ahttp.request(method, url)
            return answer.status_code, len(answer.history) + 1

    def blocking() -> tuple[int, int]:
        if mode == "httpx-sync":
            with httpx.Client(auth=KeyturnAuth(manager), timeout=30) as http:
                answer = http.request(method, url)
                return answer.status_code, len(answer.history) + 1
        with requests.Session() as session:
            session.auth = KeyturnRequestsAuth(manager)
            got = session.request(method, url, timeout=30)
            return got.status_code, len(got.history) + 1

    return await anyio.to_thread.run_sync(blocking)


@pytest.mark.parametrize("mode", MODES)
async def test_a_resource_servers_nonce_is_asked_for_once_then_used(h: Harness, mode: str) -> None:
    resource = Resource(h.live)
    manager = h.manager(dpop=True, asynchronous=mode == "httpx-async")
    h.login(manager)  # asked the token service's nonce, then sent it
    assert h.live.ctl.count("POST", "/auth/login") == 2
    with serving(resource.app()) as base:
        first = await send(manager, mode, base + "/orders")
        later = await send(manager, mode, base + "/orders", "POST")  # POST too: a 401 acted on nothing
    nonce = resource.nonce()
    # The first proof carried no nonce (not the token service's), the second the resource server's, and
    # the later request went with it at once.
    assert resource.nonces_sent == [None, nonce, nonce]
    assert (first[0], later) == (200, (200, 1))
    # The token service's nonce was kept apart: the logout's proof carries it, asked for nothing again.
    if mode == "httpx-async":
        await manager.alogout()
    else:
        manager.logout()
    assert h.live.ctl.count("POST", "/auth/logout") == 1


@pytest.mark.parametrize("mode", MODES)
async def test_a_resource_server_that_asks_again_gets_its_401_after_one_resend(h: Harness, mode: str) -> None:
    resource = Resource(h.live, rotate=True)
    manager = h.manager(dpop=True, asynchronous=mode == "httpx-async")
    h.login(manager)
    with serving(resource.app()) as base:
        status, _ = await send(manager, mode, base + "/orders")
    assert status == 401
    assert len(resource.nonces_sent) == 2
    assert h.ended == []
