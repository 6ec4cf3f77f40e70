"""The ASGI and WSGI middleware answer a request without a token with the challenges of a resource that
takes DPoP-bound tokens (RFC 9449 section 7.2), naming the algorithms of their verifier; a verifier with
DPoP off (``KEYTURN_DPOP=off``, or ``dpop=False``) keeps the Bearer challenge alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from keyturn.fastapi import EmbeddedKeyturn
from keyturn.middleware.asgi import KeyturnMiddleware
from keyturn.middleware.verifier import AccessTokenVerifier
from keyturn.middleware.wsgi import KeyturnWSGIMiddleware
from keyturn.store.memory import MemoryStore
from keyturn.testing import make_settings

from .._challenges import BARE, BARE_BEARER


@pytest.fixture(
    params=[{}, {"dpop": False}, {"settings": make_settings(dpop="off")}], ids=["on", "off", "env-off"]
)
def verifier(request: pytest.FixtureRequest) -> Iterator[AccessTokenVerifier]:
    """A verifier on a memory store; no request here has a token, so it is never asked (nor started)."""
    built = AccessTokenVerifier.for_store(MemoryStore(), **request.param)
    try:
        yield built
    finally:
        built.close()


def expected(verifier: AccessTokenVerifier) -> str:
    return BARE if verifier.dpop_algs else BARE_BEARER


def test_the_verifier_names_the_algorithms_unless_dpop_is_off(verifier: AccessTokenVerifier) -> None:
    assert verifier.dpop_algs in ((), ("ES256", "EdDSA"))


async def test_the_asgi_middleware_challenges_as_its_verifier_says(
    verifier: AccessTokenVerifier, anyio_backend: str
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app is not called without a token")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/orders", "headers": [], "scheme": "http"}
    await KeyturnMiddleware(app, verifier)(scope, receive, send)

    assert sent[0]["status"] == 401
    assert dict(sent[0]["headers"])[b"www-authenticate"] == expected(verifier).encode()


def test_the_wsgi_middleware_challenges_as_its_verifier_says(verifier: AccessTokenVerifier) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise AssertionError("the app is not called without a token")

    started: list[tuple[str, list[tuple[str, str]]]] = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/orders", "HTTP_AUTHORIZATION": "Basic eA=="}
    KeyturnWSGIMiddleware(app, verifier)(environ, lambda status, headers: started.append((status, headers)))

    assert started[0][0] == "401 Unauthorized"
    assert dict(started[0][1])["WWW-Authenticate"] == expected(verifier)


@pytest.mark.parametrize(
    ("dpop", "algs"), [("optional", ("ES256", "EdDSA")), ("required", ("ES256", "EdDSA")), ("off", ())]
)
def test_the_verifier_takes_the_services_dpop_modes(dpop: str, algs: tuple[str, ...]) -> None:
    """Django's ``KEYTURN = {"DPOP": "off"}`` means ``KEYTURN_DPOP=off``; other values are refused."""
    with AccessTokenVerifier.for_store(MemoryStore(), dpop=dpop) as verifier:
        assert verifier.dpop_algs == algs
    with pytest.raises(ValueError, match="dpop"):
        AccessTokenVerifier.for_store(MemoryStore(), dpop="no")


@pytest.mark.parametrize(("dpop", "algs"), [("optional", ("ES256", "EdDSA")), ("off", ())])
def test_an_embedded_keyturns_verifier_follows_its_settings(dpop: str, algs: tuple[str, ...]) -> None:
    """``keyturn.fastapi.install``'s ``auth.verifier`` challenges as the app's own routes do."""
    embedded = EmbeddedKeyturn(make_settings(dpop=dpop))
    try:
        assert embedded.verifier.dpop_algs == algs
    finally:
        embedded.verifier.close()


def test_an_embedded_keyturns_verifier_takes_every_verifier_setting() -> None:
    """``auth.verifier`` is built from the same settings as ``for_store``/``for_service``'s (it left out
    ``DPOP_PROOF_MAX_AGE``, so the app's routes kept a 60 s proof window whatever the setting said)."""
    settings = make_settings(dpop_proof_max_age=7, leeway=12, revocation_poll_interval=3)
    embedded = EmbeddedKeyturn(settings)
    try:
        with AccessTokenVerifier.for_store(MemoryStore(), settings=settings) as reference:
            assert embedded.verifier.proofs.rules == reference.proofs.rules
            assert embedded.verifier.proofs.rules.max_age == 7
            for name in ("issuer", "audience", "leeway", "dpop_algs"):
                assert getattr(embedded.verifier, name) == getattr(reference, name)
    finally:
        embedded.verifier.close()
