"""What the six framework apps of ``test_middleware_frameworks`` are, how a test reaches them, and what a
refusal or an admission of theirs must look like (the tests and their fixtures are in the test modules)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from keyturn._sign import with_low_s

from .._challenges import ALGS, BARE, challenges
from ._http import ERROR_KEYS, assert_error, bearer, jwt_parts, login, why
from ._resource import ResourceApp
from ._server import Cluster

RESOURCE_ENV = {"KEYTURN_REVOCATION_POLL_INTERVAL": "0.2", "KEYTURN_LEEWAY": "0"}
APPS = {
    "fastapi": ("tests.e2e.apps.fastapi_resource", ()),
    "starlette": ("tests.e2e.apps.starlette_resource", ()),
    "flask": ("tests.e2e.apps.flask_resource", ()),
    "django": ("tests.e2e.apps.django_resource", ()),
    "drf-only": ("tests.e2e.apps.django_resource", ("--without-middleware",)),
    "django-asgi": ("tests.e2e.apps.django_resource", ("--asgi",)),
}
REVOCATION_DEADLINE = 10.0


@dataclass(frozen=True)
class Target:
    """A protected route of one app."""

    app: str
    path: str
    drf: bool = False
    """A Django REST framework view: DRF renders a missing token and a missing scope."""

    def __str__(self) -> str:
        return f"{self.app}{self.path}"

    @property
    def drf_renders_bad_tokens(self) -> bool:
        """Without the Django middleware, ``KeyturnAuthentication`` refuses bad tokens through DRF."""
        return self.app == "drf-only"


PROTECTED = [
    Target("fastapi", "/whoami"),
    Target("starlette", "/whoami"),
    Target("flask", "/whoami"),
    Target("django", "/plain/whoami"),
    Target("django", "/drf/whoami", drf=True),
    Target("drf-only", "/drf/whoami", drf=True),
    Target("django-asgi", "/async/whoami"),  # the middleware async, on the event loop
    Target("django-asgi", "/plain/whoami"),  # a sync view behind it
]
SCOPED = [  # each needs the scope orders:read; the ASGI and WSGI middlewares have no scope checks
    Target("fastapi", "/orders"),
    Target("django", "/plain/orders"),
    Target("django", "/drf/orders", drf=True),
    Target("drf-only", "/drf/orders", drf=True),
    Target("django-asgi", "/async/orders"),
]


@dataclass(repr=False)
class World:
    service: Cluster
    apps: dict[str, ResourceApp]
    alice: dict[str, Any]
    """A live login of alice's, shared by the tests that do not end it."""

    def get(self, target: Target, headers: dict[str, str] | dict[str, bytes] | None = None) -> httpx.Response:
        with self.apps[target.app].client() as http:
            return http.get(target.path, headers=headers)

    def login(self) -> dict[str, Any]:
        with self.service.server.client() as http:
            return login(http, self.service.username, self.service.password)


def warm_up(world: World, target: Target, timeout: float = 60) -> None:
    """Wait until ``target`` admits alice's token: a verifier starts on its first token and waits only
    ``timeout`` (5 s) for the keys, so on a loaded machine a first request may get a retryable 503."""
    deadline = time.monotonic() + timeout
    while True:
        response = world.get(target, bearer(world.alice["access_token"]))
        if response.status_code == 200:
            return
        assert response.status_code == 503, why(response)
        assert time.monotonic() < deadline, f"{target} never admitted a valid token: {why(response)}"
        time.sleep(0.2)


@dataclass(repr=False)
class Signer:
    """The service's active access key, as an operator holding its data dir could use it."""

    kid: str
    key: Any
    claims: dict[str, Any]

    def sign(self, **changes: Any) -> str:
        """A fresh access token for alice's live session, with ``changes`` to its claims."""
        now = int(time.time())
        claims = {**self.claims, "jti": secrets.token_urlsafe(16), "iat": now, "exp": now + 600, **changes}
        token = jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid, "typ": "at+jwt"})
        return with_low_s(token)


def assert_refused(
    response: httpx.Response, status: int, code: str, *, by_drf: bool, bare: bool = False
) -> None:
    """``response`` is the refusal the integration promises (the 403 challenge is checked on its own).

    Keyturn's own renderers: everything ``assert_error`` checks, at a resource that takes DPoP. DRF's
    renderer: the three-key body and, on 401, the RFC 6750 challenge with ``invalid_token`` and the wire
    code, or, ``bare`` (the request had no token), ``Bearer realm="keyturn"`` alone; either followed by
    ``DPoP realm="keyturn", algs="ES256 EdDSA"`` (RFC 9449 section 7.2: every app here takes DPoP).
    """
    if not by_drf:
        assert_error(response, status, code, bare=bare, dpop=True)
        return
    assert response.status_code == status, why(response)
    assert response.headers.get("content-type", "").startswith("application/json"), why(response)
    body = response.json()
    assert isinstance(body, dict)
    assert set(body) == ERROR_KEYS, f"status {response.status_code}, body keys {sorted(body)}"
    assert body["error"] == code, why(response)
    assert isinstance(body["error_description"], str)
    assert body["error_description"]
    assert body["retryable"] is (code == "server_error")
    if status == 401:
        challenge = response.headers.get("www-authenticate", "")
        if bare:
            assert challenge == BARE, challenge
            return
        (scheme, params), *rest = challenges(challenge)
        assert (scheme, params["realm"], params["error"]) == ("Bearer", "keyturn", "invalid_token"), challenge
        assert params["error_description"].startswith(f"{code}: "), challenge
        assert rest == [("DPoP", {"realm": "keyturn", "algs": ALGS})], challenge


def assert_token_refused(response: httpx.Response, target: Target, code: str, *, bare: bool = False) -> None:
    assert_refused(response, 401, code, by_drf=target.drf_renders_bad_tokens, bare=bare)


def assert_admitted(response: httpx.Response, token: str, sub: str = "alice") -> dict[str, Any]:
    """200, and the view saw this very token: its ``sub``, ``sid`` and ``jti``."""
    assert response.status_code == 200, why(response)
    body: dict[str, Any] = response.json()
    claims = jwt_parts(token)[1]
    assert (body["sub"], body["sid"], body["jti"]) == (sub, claims["sid"], claims["jti"])
    assert body.get("user", sub) == sub  # DRF: request.user is the token's subject
    assert body.get("state_matches", True) is True  # Starlette: request.state.keyturn is the same claims
    return body
