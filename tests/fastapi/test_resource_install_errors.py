"""A resource server's ``keyturn.middleware.fastapi.install`` answers a ``KeyturnError`` raised in the app's
own route (a direct ``verifier.verify`` that cannot reach the keys, or any other Keyturn error) with
Keyturn's status, body and headers, as ``require_token``'s refusals are, instead of a 500 with a stack
trace; the Python client's own errors stay the app's 500. The handler is the one ``keyturn.fastapi``
uses. Found by an audit of the resource-server helpers."""

from __future__ import annotations

import base64
import json
import logging
import socket
import time
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI, Header

from keyturn.errors import RateLimited, SessionEnded
from keyturn.middleware.fastapi import install
from keyturn.middleware.verifier import AccessTokenVerifier
from keyturn.testing import make_settings

from .._challenges import ALGS, challenges
from .._threaded import serving
from ..e2e._http import assert_error


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token_of_an_unseen_key() -> str:
    """An access token's shape naming a key the verifier has never seen: it must fetch the keys."""
    now = int(time.time())
    claims = {"iss": "keyturn", "aud": "keyturn-api", "sub": "ada", "sid": "s", "jti": "j"}
    header = {"alg": "ES256", "typ": "at+jwt", "kid": "unseen"}
    parts = (json.dumps(header).encode(), json.dumps({**claims, "iat": now, "exp": now + 300}).encode())
    return ".".join([*(_b64(part) for part in parts), _b64(b"\x01" * 64)])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def app() -> FastAPI:
    """A resource whose verifier's token service is out of reach, with routes that call Keyturn directly."""
    verifier = AccessTokenVerifier.for_service(
        f"http://127.0.0.1:{closed_port()}", settings=make_settings(), timeout=5
    )
    app = FastAPI()
    install(app, verifier)

    @app.get("/checks-by-hand")
    async def checks_by_hand(authorization: Annotated[str, Header()]) -> dict[str, str]:
        return {"user": (await verifier.averify(authorization.removeprefix("Bearer "))).sub}

    @app.get("/limited")
    async def limited() -> None:
        raise RateLimited(retry_after=7)

    @app.get("/calls-another-service")
    async def calls_another_service() -> None:
        raise SessionEnded("logout")  # the Python client's error: the app's own bug, not a wire code

    return app


def test_a_keyturn_error_in_a_route_answers_its_code_not_a_500(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """Keys out of reach are 503 ``server_error`` (retryable), logged by the failure's type as Keyturn's own
    routes log one; a token the route refuses is 401 with the resource's challenges (``Bearer`` with the
    code, then ``DPoP``); any other Keyturn error its own status and headers (``Retry-After``)."""
    caplog.set_level(logging.ERROR, "keyturn.middleware")
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        unavailable = http.get(
            "/checks-by-hand", headers={"Authorization": f"Bearer {token_of_an_unseen_key()}"}
        )
        broken = http.get("/checks-by-hand", headers={"Authorization": "Bearer not-a-token"})
        broken_dpop = http.get("/checks-by-hand", headers={"Authorization": "DPoP not-a-token"})
        limited = http.get("/limited")

    assert_error(unavailable, 503, "server_error")
    failures = [r.getMessage() for r in caplog.records if r.name == "keyturn.middleware"]
    assert [m for m in failures if m.startswith("store or service failure: ")], failures
    assert_error(broken, 401, "token_invalid", dpop=True)
    (_, bearer), (scheme, dpop) = challenges(broken.headers["www-authenticate"])
    assert bearer["error"] == "invalid_token"
    assert (scheme, dpop["algs"]) == ("DPoP", ALGS)
    # A request in the DPoP scheme is refused in that scheme alone (RFC 9449 section 7.1).
    assert (broken_dpop.status_code, broken_dpop.json()["error"]) == (401, "token_invalid")
    ((scheme, alone),) = challenges(broken_dpop.headers["www-authenticate"])
    assert (scheme, alone["error"], alone["algs"]) == ("DPoP", "invalid_token", ALGS)
    assert_error(limited, 429, "rate_limited")
    assert limited.headers["retry-after"] == "7"


def test_the_python_clients_errors_stay_the_apps_500(app: FastAPI) -> None:
    """``ClientError`` has no wire code: rendering it would pass off the app's bug as Keyturn's answer."""
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/calls-another-service").status_code == 500
