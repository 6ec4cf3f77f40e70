"""An application's resource server that checks DPoP proofs with nonces of its own (RFC 9449 section 9),
served by a test on loopback, and :func:`send`: one request to it through each of the client's auth
classes (httpx sync and async, requests), with a body of each kind the libraries take.
"""

from __future__ import annotations

import base64
import json
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import httpx
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from keyturn.client import KeyturnAuth, KeyturnRequestsAuth, TokenManager
from keyturn.dpop import Nonces, ProofRules, check_proof
from keyturn.errors import InvalidDpopProof, UseDpopNonce

from ._client_live import LiveService

MODES = ["httpx-sync", "httpx-async", "requests"]

Body = Literal["bytes", "generator", "file"]
"""A request body: bytes in memory, chunks from a generator, or a (seekable) file."""


@dataclass
class Resource:
    """A resource server that takes DPoP-bound access tokens only with a proof carrying its own nonce
    (checked by Keyturn's proof checker, on the service's clock); ``rotate``: a new nonce for every proof,
    so that no proof ever passes; ``rotate_on_success``: a new nonce with every 200 (``DPoP-Nonce``), the
    one before refused from then on; ``expire``: so many requests with a good proof are refused next as
    Keyturn refuses an expired token (401 ``token_expired``)."""

    live: LiveService
    rotate: bool = False
    rotate_on_success: bool = False
    expire: int = 0
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    nonces_sent: list[str | None] = field(default_factory=list)
    """The ``nonce`` claim of each proof that reached it, in order."""
    bodies: list[bytes] = field(default_factory=list)
    """The body of each request that reached it, read in full, in order."""
    tokens: list[str] = field(default_factory=list)
    """The access token of each request that reached it, in order."""

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/orders", self.orders, methods=["GET", "POST"])])

    def nonce(self) -> str:
        return Nonces(self.key).current(self.live.clock.now())

    async def orders(self, request: Request) -> JSONResponse:
        self.bodies.append(await request.body())
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        self.tokens.append(token)
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
        if self.expire:
            self.expire -= 1
            challenge = 'DPoP error="invalid_token", error_description="token_expired: Token has expired."'
            return JSONResponse({"error": "token_expired"}, 401, {"WWW-Authenticate": challenge})
        if self.rotate_on_success:
            self.key = secrets.token_bytes(32)
            return JSONResponse({"ok": True}, headers={"DPoP-Nonce": self.nonce()})
        return JSONResponse({"ok": True, "method": request.method})


@dataclass(frozen=True)
class Sent:
    """What the application got for one request: the final answer's status and body, and how many
    answers the request got in all."""

    status: int
    json: Any
    answers: int


def _chunks(data: bytes) -> Iterator[bytes]:
    yield data[: len(data) // 2]
    yield data[len(data) // 2 :]


async def _achunks(data: bytes) -> AsyncIterator[bytes]:
    for chunk in _chunks(data):
        yield chunk


async def send(
    manager: TokenManager,
    mode: str,
    url: str,
    method: str = "GET",
    *,
    body: Body | None = None,
    data: bytes = b"",
    read_timeout: float = 30,
) -> Sent:
    """One request to ``url`` through the mode's auth class, with ``data`` as a ``body`` of that kind
    (none if ``body`` is None)."""
    if mode == "httpx-async":
        assert body != "file", "httpx.AsyncClient streams a file only as an async iterator"
        content = None if body is None else data if body == "bytes" else _achunks(data)
        async with httpx.AsyncClient(auth=KeyturnAuth(manager), timeout=read_timeout) as ahttp:
            answer = await ahttp.request(method, url, content=content)
            return Sent(answer.status_code, answer.json(), len(answer.history) + 1)

    def blocking() -> Sent:
        with tempfile.TemporaryFile() as file:
            file.write(data)
            file.seek(0)
            kinds: dict[Body, Any] = {"bytes": data, "generator": _chunks(data), "file": file}
            content = None if body is None else kinds[body]
            if mode == "httpx-sync":
                with httpx.Client(auth=KeyturnAuth(manager), timeout=read_timeout) as http:
                    answer = http.request(method, url, content=content)
                    return Sent(answer.status_code, answer.json(), len(answer.history) + 1)
            with requests.Session() as session:
                session.auth = KeyturnRequestsAuth(manager)
                got = session.request(method, url, data=content, timeout=read_timeout)
                return Sent(got.status_code, got.json(), len(got.history) + 1)

    return await anyio.to_thread.run_sync(blocking)
