"""Every framework integration in a real app, served over real HTTP on loopback, against a real token service.

One ``keyturn serve`` for the module and one process per app (``tests/e2e/apps``):

- ``fastapi``: FastAPI behind the ASGI middleware and ``require_token`` (uvicorn);
- ``starlette``: a plain Starlette app wrapped in the pure ASGI ``KeyturnMiddleware`` (uvicorn);
- ``flask``: Flask wrapped in ``KeyturnWSGIMiddleware`` (werkzeug's threaded server);
- ``django``: Django with ``KeyturnMiddleware``, a ``token_required`` view and DRF views (werkzeug);
- ``drf-only``: the same project without the Django middleware, so DRF's ``KeyturnAuthentication`` and
  ``HasScopes`` refuse tokens themselves.
- ``django-asgi``: the same project under uvicorn (ASGI), with async views: the middleware runs async.

What the integrations promise about refusals (``docs/resource-servers.md``): every refusal has the body
``{"error", "error_description", "retryable"}`` and, on 401, ``WWW-Authenticate: Bearer ...
error="invalid_token", error_description="<code>: ...", DPoP realm="keyturn", algs="ES256 EdDSA"``
(403: ``Bearer ... error="insufficient_scope"``); a missing token (no ``Authorization``, or another
scheme) is ``token_invalid`` with the bare challenges ``Bearer realm="keyturn", DPoP realm="keyturn",
algs="ES256 EdDSA"`` (RFC 6750 section 3.1, RFC 9449 section 7.2: no error code for a request without
credentials).
Keyturn's own renderers (the ASGI and WSGI middlewares, FastAPI's ``install``, the Django middleware and
``token_required``) also send ``Cache-Control: no-store``, as the token service does; what DRF renders is
held to the guide's promise only.

The resource servers run with ``KEYTURN_LEEWAY=0`` (an expired token is refused as soon as it expires) and
``KEYTURN_REVOCATION_POLL_INTERVAL=0.2``. Tokens the service never issues (with a ``scope``) are signed with
the service's own access key read from its data dir, as only an operator could.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from keyturn.client.dpop import DpopKey
from keyturn.keys import MasterKey

from .._challenges import ALGS, challenges
from ._frameworks import (
    APPS,
    PROTECTED,
    RESOURCE_ENV,
    REVOCATION_DEADLINE,
    SCOPED,
    Signer,
    Target,
    World,
    assert_admitted,
    assert_refused,
    assert_token_refused,
    warm_up,
)
from ._http import b64url_json, bearer, jwt_parts, login, why
from ._resource import resource_apps
from ._server import cluster, start_server, stop_server

# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("frameworks")
    with (
        cluster(base / "data") as service,
        resource_apps(APPS, service.server.url, base / "logs", RESOURCE_ENV) as apps,
    ):
        with service.server.client() as http:
            alice = login(http, service.username, service.password)
        world = World(service, apps, alice)
        for target in PROTECTED:
            warm_up(world, target)
        yield world


@pytest.fixture(scope="module")
def expired_token(world: World) -> str:
    """An access token from a second ``keyturn serve`` on the same data dir (the same keys) whose access
    tokens live one second, once that second is over."""
    short = start_server(world.service.data_dir, {"KEYTURN_ACCESS_TOKEN_LIFETIME": "1"})
    try:
        with short.client() as http:
            token: str = login(http, world.service.username, world.service.password)["access_token"]
    finally:
        stop_server(short)
    header, claims = jwt_parts(token)
    assert header["kid"] == jwt_parts(world.alice["access_token"])[0]["kid"], "not the service's key"
    assert claims["exp"] - claims["iat"] <= 1
    while time.time() <= claims["exp"] + 0.5:  # the resource servers judge with no leeway
        time.sleep(0.1)
    return token


@pytest.fixture(scope="module")
def signer(world: World) -> Signer:
    header, claims = jwt_parts(world.alice["access_token"])
    assert header["alg"] == "ES256"
    data_dir = world.service.data_dir
    master = MasterKey((data_dir / "secret.key").read_text().strip())
    with contextlib.closing(sqlite3.connect(data_dir / "keyturn.db")) as db:
        (material,) = db.execute(
            "SELECT material FROM signing_keys WHERE kid = ? AND use = 'access'", (header["kid"],)
        ).fetchone()
    key = serialization.load_der_private_key(master.decrypt(bytes(material)), password=None)
    return Signer(header["kid"], key, claims)


# -- a valid token, no token, the exempt status ---------------------------------------------------


@pytest.mark.parametrize("target", PROTECTED, ids=str)
def test_a_valid_token_reaches_the_view_with_its_subject(world: World, target: Target) -> None:
    token = world.alice["access_token"]
    with world.service.server.client() as http:
        subject = http.get("/auth/me", headers=bearer(token)).json()["subject"]
    assert subject == world.service.username
    for _ in range(2):  # the second time from the verifier's cache
        body = assert_admitted(world.get(target, bearer(token)), token, subject)
    assert body["sid"] == world.alice["session_id"]


@pytest.mark.parametrize("target", PROTECTED + SCOPED, ids=str)
def test_no_token_on_a_protected_route_is_token_invalid(world: World, target: Target) -> None:
    """Every integration answers a missing token with the DESIGN error body, and the bare challenge
    ``Bearer realm="keyturn"`` (RFC 6750 section 3.1: no error code without credentials); a DRF view too."""
    response = world.get(target)
    assert_refused(response, 401, "token_invalid", by_drf=target.drf, bare=True)
    assert response.json()["error_description"] == "No access token was given."


@pytest.mark.parametrize("app", APPS)
def test_status_needs_no_token(world: World, app: str) -> None:
    with world.apps[app].client() as http:
        response = http.get("/status")
    assert response.status_code == 200, why(response)
    assert {"healthy", "keys", "revocation_lag_seconds"} <= set(response.json())


# -- bad tokens ----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", PROTECTED, ids=str)
def test_an_expired_token_is_token_expired(world: World, target: Target, expired_token: str) -> None:
    assert_token_refused(world.get(target, bearer(expired_token)), target, "token_expired")


def flip(segment: str, at: int) -> str:
    return segment[:at] + ("A" if segment[at] != "A" else "B") + segment[at + 1 :]


def tampered_signature(token: str) -> str:
    head, payload, signature = token.split(".")
    return f"{head}.{payload}.{flip(signature, len(signature) // 2)}"


def tampered_payload(token: str) -> str:
    head, _, signature = token.split(".")
    return f"{head}.{b64url_json({**jwt_parts(token)[1], 'sub': 'mallory'})}.{signature}"


@pytest.mark.parametrize("tamper", [tampered_signature, tampered_payload], ids=lambda f: f.__name__)
@pytest.mark.parametrize("target", PROTECTED, ids=str)
def test_a_tampered_token_is_token_invalid(
    world: World, target: Target, tamper: Callable[[str], str]
) -> None:
    token = world.alice["access_token"]
    assert_admitted(world.get(target, bearer(token)), token)  # the genuine one is cached by now
    assert_token_refused(world.get(target, bearer(tamper(token))), target, "token_invalid")


@pytest.mark.parametrize("target", PROTECTED, ids=str)
def test_a_refresh_token_is_not_an_access_token(world: World, target: Target) -> None:
    response = world.get(target, bearer(world.alice["refresh_token"]))
    assert_token_refused(response, target, "token_invalid")


def garbage(kind: str, world: World) -> str | bytes:
    """An ``Authorization`` value that must be refused as ``token_invalid``."""
    token = world.alice["access_token"]
    head, payload, signature = token.split(".")
    claims = jwt_parts(token)[1]
    kid = jwt_parts(token)[0]["kid"]
    values: dict[str, str | bytes] = {
        "empty": "",
        "scheme-only": "Bearer",
        "basic": "Basic xyz",
        "basic-with-a-real-token": f"Basic {token}",
        "three-junk-parts": "Bearer a.b.c",
        "10kb": f"Bearer {head}.{'A' * 10_240}.{signature}",
        "two-tokens": f"Bearer {token} {token}",
        "non-ascii": b"Bearer \xc3\xa9\xff\x80.\xfe.x",
        "alg-none": f"Bearer {b64url_json({'alg': 'none', 'typ': 'at+jwt', 'kid': kid})}.{payload}.",
        # Issued well before the verifier's last JWKS fetch: a genuine key would have been listed.
        "unknown-kid": unknown_kid_token(claims, signature, iat=claims["iat"] - 120),
    }
    return values[kind]


def unknown_kid_token(claims: dict[str, Any], signature: str, *, iat: int) -> str:
    header = {"alg": "ES256", "typ": "at+jwt", "kid": f"no-such-key-{secrets.token_hex(4)}"}
    return f"Bearer {b64url_json(header)}.{b64url_json({**claims, 'iat': iat})}.{signature}"


# Another scheme, or none: the request carries no bearer credentials, so its challenge is the bare one.
NO_BEARER = {"empty", "basic", "basic-with-a-real-token"}
GARBAGE = [
    "empty",
    "scheme-only",
    "basic",
    "basic-with-a-real-token",
    "three-junk-parts",
    "10kb",
    "two-tokens",
    "non-ascii",
    "alg-none",
    "unknown-kid",
]


@pytest.mark.parametrize("kind", GARBAGE)
@pytest.mark.parametrize("target", PROTECTED, ids=str)
def test_a_garbage_authorization_header_is_token_invalid_never_a_500(
    world: World, target: Target, kind: str
) -> None:
    response = world.get(target, {"Authorization": garbage(kind, world)})  # type: ignore[dict-item]
    assert_token_refused(response, target, "token_invalid", bare=kind in NO_BEARER)


@pytest.mark.parametrize("target", PROTECTED, ids=str)
def test_a_fresh_token_naming_an_unknown_key_is_refused_never_a_500(world: World, target: Target) -> None:
    """Issued just now under a key id nobody has seen: ``token_invalid`` once a fetch lacks the key, or a
    retryable 503 while no fetch may begin (the key could be brand new); both in the documented shape."""
    _, claims = jwt_parts(world.alice["access_token"])
    signature = world.alice["access_token"].rsplit(".", 1)[1]
    authorization = unknown_kid_token(claims, signature, iat=int(time.time()))
    response = world.get(target, {"Authorization": authorization})
    if response.status_code == 503:
        assert_refused(response, 503, "server_error", by_drf=target.drf_renders_bad_tokens)
    else:
        assert_token_refused(response, target, "token_invalid")


# -- revocation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", PROTECTED, ids=str)
def test_a_logged_out_token_is_token_revoked_within_seconds(world: World, target: Target) -> None:
    pair = world.login()
    token = pair["access_token"]
    assert_admitted(world.get(target, bearer(token)), token)
    with world.service.server.client() as http:
        out = http.post("/auth/logout", headers=bearer(token))
    assert out.status_code == 200, why(out)
    assert out.json()["revoked_sessions"] == [pair["session_id"]]
    deadline = time.monotonic() + REVOCATION_DEADLINE
    while True:
        response = world.get(target, bearer(token))
        if response.status_code != 200:
            break
        assert time.monotonic() < deadline, f"still admitted {REVOCATION_DEADLINE}s after logout"
        time.sleep(0.1)
    assert_token_refused(response, target, "token_revoked")
    assert_token_refused(world.get(target, bearer(token)), target, "token_revoked")  # and it stays so
    assert_admitted(world.get(target, bearer(world.alice["access_token"])), world.alice["access_token"])


# -- scopes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", SCOPED, ids=str)
def test_a_token_without_the_scope_is_insufficient_scope(world: World, target: Target) -> None:
    """The service issues no scopes: its tokens are valid but do not grant orders:read."""
    response = world.get(target, bearer(world.alice["access_token"]))
    assert_refused(response, 403, "insufficient_scope", by_drf=target.drf)


@pytest.mark.parametrize("target", SCOPED, ids=str)
def test_insufficient_scope_carries_the_rfc6750_challenge(world: World, target: Target) -> None:
    """RFC 6750 section 3: a 403 for a missing scope says so in ``WWW-Authenticate`` (the guide's promise)."""
    response = world.get(target, bearer(world.alice["access_token"]))
    assert response.status_code == 403, why(response)
    challenge = response.headers.get("www-authenticate")
    assert challenge == 'Bearer realm="keyturn", error="insufficient_scope"', challenge


# -- a token presented in the DPoP scheme ---------------------------------------------------------


def as_dpop(world: World, target: Target, token: str, key: DpopKey) -> dict[str, str]:
    """``Authorization: DPoP <token>`` and a valid proof of ``key`` for a GET of ``target``."""
    url = world.apps[target.app].url + target.path
    return {
        "Authorization": f"DPoP {token}",
        "DPoP": key.proof("GET", url, now=time.time(), access_token=token),
    }


def dpop_challenge(response: httpx.Response, status: int, error: str) -> dict[str, str]:
    """The one ``DPoP`` challenge of ``response`` (RFC 9449 section 7.1: the scheme the request used),
    carrying ``error``; its parameters."""
    assert response.status_code == status, why(response)
    ((scheme, params),) = challenges(response.headers.get("www-authenticate", ""))
    assert (scheme, params["realm"], params["error"], params["algs"]) == ("DPoP", "keyturn", error, ALGS)
    return params


@pytest.mark.parametrize("target", PROTECTED, ids=str)
def test_an_expired_token_presented_as_dpop_is_refused_in_the_dpop_challenge(
    world: World, signer: Signer, target: Target
) -> None:
    """Every adapter and renderer (DRF's too) puts the error in the ``DPoP`` challenge, alone, for a token
    presented as ``DPoP`` with a valid proof; it used to go in ``Bearer``, which the client had not used."""
    key, now = DpopKey.generate(), int(time.time())
    token = signer.sign(cnf={"jkt": key.thumbprint}, iat=now - 120, exp=now - 60)
    response = world.get(target, as_dpop(world, target, token, key))
    params = dpop_challenge(response, 401, "invalid_token")
    assert params["error_description"].startswith("token_expired: "), params
    assert response.json()["error"] == "token_expired"


@pytest.mark.parametrize("target", SCOPED, ids=str)
def test_insufficient_scope_is_challenged_in_dpop_for_a_token_presented_so(
    world: World, signer: Signer, target: Target
) -> None:
    """403 ``insufficient_scope`` in the scheme used: ``DPoP`` for a bound token presented as ``DPoP``."""
    key = DpopKey.generate()
    token = signer.sign(cnf={"jkt": key.thumbprint}, scope="orders:write")
    response = world.get(target, as_dpop(world, target, token, key))
    assert dpop_challenge(response, 403, "insufficient_scope") == {
        "realm": "keyturn",
        "error": "insufficient_scope",
        "algs": ALGS,
    }
    assert response.json()["error"] == "insufficient_scope"


@pytest.mark.parametrize("scope", ["orders:write", "orders:readonly profile", "ORDERS:READ", ["orders"]])
@pytest.mark.parametrize("target", SCOPED, ids=str)
def test_a_token_with_other_scopes_is_insufficient_scope(
    world: World, signer: Signer, target: Target, scope: str | list[str]
) -> None:
    response = world.get(target, bearer(signer.sign(scope=scope)))
    assert_refused(response, 403, "insufficient_scope", by_drf=target.drf)


@pytest.mark.parametrize("scope", ["orders:read", "profile orders:read", ["orders:read", "profile"]])
@pytest.mark.parametrize("target", SCOPED, ids=str)
def test_a_token_with_the_scope_is_admitted(
    world: World, signer: Signer, target: Target, scope: str | list[str]
) -> None:
    response = world.get(target, bearer(signer.sign(scope=scope)))
    assert response.status_code == 200, why(response)
    assert response.json() == {"orders": [], "for": world.service.username}


# -- threads -------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", PROTECTED, ids=str)
def test_concurrent_requests_each_get_their_own_answer(world: World, signer: Signer, target: Target) -> None:
    """Fresh tokens (no cache hit) for different subjects, some tampered, at once: no answer crosses."""
    tokens = [(f"user-{i}", signer.sign(sub=f"user-{i}")) for i in range(16)]
    cases = [(sub, token if i % 4 else tampered_signature(token)) for i, (sub, token) in enumerate(tokens)]

    def call(case: tuple[str, str]) -> tuple[str, str, httpx.Response]:
        return case[0], case[1], world.get(target, bearer(case[1]))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, cases))
    for i, (sub, token, response) in enumerate(answers):
        if i % 4:
            assert_admitted(response, token, sub)
        else:
            assert_token_refused(response, target, "token_invalid")


def test_every_app_is_still_running(world: World) -> None:
    """No app crashed on what the other tests sent it."""
    for name, app in world.apps.items():
        assert app.process.poll() is None, f"{name} exited: {app.log_text()[-2000:]}"


# -- more than one Authorization header (RFC 6750 section 3.1: invalid_request) ---------------------

REPEATED = {
    "valid-then-junk": ("valid", "Bearer junk.junk.junk"),
    "junk-then-valid": ("Bearer junk.junk.junk", "valid"),
    "basic-then-valid": ("Basic eA==", "valid"),
    "valid-twice": ("valid", "valid"),
}


@pytest.mark.parametrize("kind", REPEATED)
@pytest.mark.parametrize("target", PROTECTED, ids=str)
def test_more_than_one_authorization_header_is_invalid_request(
    world: World, target: Target, kind: str
) -> None:
    """Two ``Authorization`` headers, in whichever order and whatever they hold, are 400 ``invalid_request``
    with the challenge naming it, never the first (or last) one's answer. The WSGI servers (werkzeug here)
    join them with a comma into one ``HTTP_AUTHORIZATION``, which the Django and WSGI adapters refuse too."""
    token = world.alice["access_token"]
    values = [f"Bearer {token}" if value == "valid" else value for value in REPEATED[kind]]
    with world.apps[target.app].client() as http:
        response = http.get(target.path, headers=[("Authorization", value) for value in values])
    assert_refused(response, 400, "invalid_request", by_drf=target.drf_renders_bad_tokens)
    assert "more than one Authorization header" in response.json()["error_description"], why(response)
    challenge = response.headers.get("www-authenticate", "")
    assert challenge.startswith('Bearer realm="keyturn", error="invalid_request"'), challenge
