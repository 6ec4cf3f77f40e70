"""RFC 9449 sections 7.1 and 7.2, the same from ``keyturn serve`` and the Django app: the routes that take
an access token as ``Bearer`` or ``DPoP`` (``me``, ``logout``) challenge in both schemes while DPoP is on,
``DPoP`` naming the metadata's ``dpop_signing_alg_values_supported``; with ``DPOP`` off, ``Bearer`` alone.
The routes that take a refresh token keep the ``Bearer`` challenge alone."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .._challenges import ALGS, BARE, BARE_BEARER, challenges
from ._oauth_targets import TARGETS, Target, running


@pytest.fixture(scope="module", params=[(t, d) for t in TARGETS for d in ("optional", "off")], ids=str)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Target, bool]]:
    """A target, and whether DPoP is on there."""
    name, dpop = request.param
    with running(name, tmp_path_factory.mktemp(name), {"DPOP": dpop}) as found:
        yield found, dpop != "off"


def after_bearer(response: httpx.Response) -> list[tuple[str, dict[str, str]]]:
    """The challenges that follow the Bearer one, which carries the refusal."""
    assert response.status_code == 401, response.text
    (scheme, params), *rest = challenges(response.headers["www-authenticate"])
    assert (scheme, params["realm"], params["error"]) == ("Bearer", "keyturn", "invalid_token")
    return rest


def test_the_routes_that_take_an_access_token_challenge_dpop_while_it_is_on(
    served: tuple[Target, bool],
) -> None:
    target, on = served
    with httpx.Client(base_url=target.url, timeout=30) as http:
        metadata = http.get("/.well-known/oauth-authorization-server").json()
        missing = [http.get(target.auth + "/me", headers=h) for h in ({}, {"Authorization": "Basic eA=="})]
        me = http.get(target.auth + "/me", headers={"Authorization": "Bearer nope"})
        logout = http.post(target.auth + "/logout", headers={"Authorization": "Bearer nope"})
        refresh = http.post(target.auth + "/refresh", json={"refresh_token": "nope"})
        login = http.post(target.auth + "/login", json={"username": target.username, "password": "not it"})
    dpop = [("DPoP", {"realm": "keyturn", "algs": ALGS})] if on else []
    assert metadata.get("dpop_signing_alg_values_supported") == (ALGS.split() if on else None)
    for answer in missing:
        assert (answer.status_code, answer.headers["www-authenticate"]) == (401, BARE if on else BARE_BEARER)
    assert after_bearer(me) == dpop
    assert after_bearer(logout) == dpop
    assert after_bearer(refresh) == []
    assert (login.status_code, login.headers["www-authenticate"]) == (401, BARE_BEARER)
