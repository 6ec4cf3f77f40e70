"""``keyturn serve``'s routes that take an access token, ``Bearer`` or ``DPoP`` (``/auth/me``,
``/auth/logout``), challenge in both schemes while DPoP is on (RFC 9449 section 7.2); the others, and every
route with ``KEYTURN_DPOP=off``, challenge as before.

The real app (``create_app``) on a real runtime, called in this process (httpx's ASGI transport).
"""

from __future__ import annotations

import httpx
import pytest

from .._challenges import ALGS, BARE, BARE_BEARER, challenges
from .test_cors import service

pytestmark = pytest.mark.anyio

DPOP = ("DPoP", {"realm": "keyturn", "algs": ALGS})
NO_TOKEN = [{}, {"Authorization": "Basic YWxpY2U6c2VjcmV0"}]


def refused_bearer(response: httpx.Response) -> list[tuple[str, dict[str, str]]]:
    """The challenges after the Bearer one, which must carry the refusal (``invalid_token``)."""
    assert response.status_code == 401, response.text
    (scheme, params), *rest = challenges(response.headers["www-authenticate"])
    assert (scheme, params["error"]) == ("Bearer", "invalid_token")
    return rest


async def test_the_routes_that_take_an_access_token_challenge_dpop_too(anyio_backend: str) -> None:
    """No token at ``/auth/me``: both bare challenges; a refused Bearer token at ``/auth/me`` and
    ``/auth/logout``: the error in Bearer, then ``DPoP`` with the metadata's algorithms."""
    async with service() as (http, _):
        missing = [await http.get("/auth/me", headers=headers) for headers in NO_TOKEN]
        head = await http.head("/auth/me")
        me = await http.get("/auth/me", headers={"Authorization": "Bearer nope"})
        logout = await http.post("/auth/logout", headers={"Authorization": "Bearer nope"})
        metadata = (await http.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["dpop_signing_alg_values_supported"] == ALGS.split()
    for answer in (*missing, head):
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == BARE
    assert refused_bearer(me) == [DPOP]
    assert refused_bearer(logout) == [DPOP]


async def test_with_dpop_off_only_bearer_is_challenged(anyio_backend: str) -> None:
    """``KEYTURN_DPOP=off``: the metadata names no DPoP algorithm, and neither does a challenge."""
    async with service(dpop="off") as (http, _):
        missing = [await http.get("/auth/me", headers=headers) for headers in NO_TOKEN]
        me = await http.get("/auth/me", headers={"Authorization": "Bearer nope"})
        logout = await http.post("/auth/logout", headers={"Authorization": "Bearer nope"})
        metadata = (await http.get("/.well-known/oauth-authorization-server")).json()
    assert "dpop_signing_alg_values_supported" not in metadata
    for answer in missing:
        assert (answer.status_code, answer.headers["www-authenticate"]) == (401, BARE_BEARER)
    assert refused_bearer(me) == []
    assert refused_bearer(logout) == []


async def test_the_routes_that_take_no_access_token_challenge_as_before(anyio_backend: str) -> None:
    """A refresh token is sent as ``Bearer`` (with a ``DPoP`` proof header for a bound session), never in
    the DPoP scheme: ``/auth/refresh`` and ``/auth/sessions`` do not offer it; a failed login neither."""
    async with service() as (http, _):
        refresh = await http.post("/auth/refresh", json={"refresh_token": "nope"})
        listed = await http.get("/auth/sessions", headers={"Authorization": "Bearer nope"})
        login = await http.post("/auth/login", json={"username": "nobody", "password": "x" * 12})
    assert refused_bearer(refresh) == []
    assert refused_bearer(listed) == []
    assert (login.status_code, login.headers["www-authenticate"]) == (401, BARE_BEARER)
