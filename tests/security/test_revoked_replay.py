"""Tokens of an ended session, replayed: at the token service and at a resource server, on every backend.

docs/contract.md: a refresh token of a revoked session is ``session_revoked`` (the first check of a
refresh, before expiry and reuse); "the token service itself checks the store on every call that takes an
access token (``/auth/me``)", so a revoked session's access token is ``token_revoked`` there at once;
``/auth/sessions`` and ``/auth/logout-all`` take the refresh token (an access token: ``insufficient_scope``),
and a revoked session's is ``session_revoked``; ``POST /auth/logout`` of a session that has already ended
answers 200 with ``{"revoked_sessions": []}``. docs/resource-servers.md: a resource server refuses the access
token of a revoked session, or a revoked token, with ``token_revoked`` once the revocation feed has brought
it (about a second; here it may take up to ``REVOCATION_DEADLINE`` on a busy machine).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ..e2e._http import assert_error, bearer, me, refresh, refreshed, why
from ..e2e._resource import ResourceApp
from ._services import REVOCATION_DEADLINE, Service, whoami

Pair = dict[str, Any]


def end_by_logout_with_access_token(http: httpx.Client, pair: Pair) -> None:
    assert http.post("/auth/logout", headers=bearer(pair["access_token"])).status_code == 200


def end_by_logout_with_refresh_token(http: httpx.Client, pair: Pair) -> None:
    assert http.post("/auth/logout", json={"refresh_token": pair["refresh_token"]}).status_code == 200


def end_by_logout_all(http: httpx.Client, pair: Pair) -> None:
    assert http.post("/auth/logout-all", json={"refresh_token": pair["refresh_token"]}).status_code == 200


def end_by_deleting_the_session(http: httpx.Client, pair: Pair) -> None:
    path = f"/auth/sessions/{pair['session_id']}"
    assert http.delete(path, headers=bearer(pair["refresh_token"])).status_code == 200


def end_by_revoking_the_refresh_token(http: httpx.Client, pair: Pair) -> None:
    assert http.post("/auth/revoke", data={"token": pair["refresh_token"]}).status_code == 200


ENDINGS: dict[str, Callable[[httpx.Client, Pair], None]] = {
    fn.__name__.removeprefix("end_by_"): fn
    for fn in (
        end_by_logout_with_access_token,
        end_by_logout_with_refresh_token,
        end_by_logout_all,
        end_by_deleting_the_session,
        end_by_revoking_the_refresh_token,
    )
}


def refused_at_resource(app: ResourceApp, token: str) -> httpx.Response:
    """The resource server's answer once it refuses ``token`` (it learns of revocations by polling)."""
    deadline = time.monotonic() + REVOCATION_DEADLINE
    answer = whoami(app, token)
    while answer.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
        answer = whoami(app, token)
    return answer


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_tokens_of_an_ended_session_are_refused_everywhere(
    service: Service, resource: ResourceApp, ending: str
) -> None:
    """However the session ended, its refresh tokens (the head and an older one) are ``session_revoked``
    and its access token is ``token_revoked`` at every endpoint that takes one and at the resource server;
    logging out again is an idempotent 200."""
    with service.client() as http:
        first = service.login()
        pair = refreshed(http, first["refresh_token"])  # so there is an older generation to replay too
        assert whoami(resource, pair["access_token"]).status_code == 200

        ENDINGS[ending](http, pair)

        assert_error(refresh(http, pair["refresh_token"]), 401, "session_revoked")
        assert_error(refresh(http, first["refresh_token"]), 401, "session_revoked")
        access = bearer(pair["access_token"])
        assert_error(me(http, pair["access_token"]), 401, "token_revoked")
        assert_error(http.get("/auth/sessions", headers=access), 403, "insufficient_scope")
        held = bearer(pair["refresh_token"])
        assert_error(http.get("/auth/sessions", headers=held), 401, "session_revoked")
        assert_error(http.post("/auth/logout-all", headers=held), 401, "session_revoked")
        other = service.login()  # a live session of alice's that the ended one must not be able to end
        ending_other = f"/auth/sessions/{other['session_id']}"
        assert_error(http.delete(ending_other, headers=access), 403, "insufficient_scope")
        assert_error(http.delete(ending_other, headers=held), 401, "session_revoked")
        again = http.post("/auth/logout", headers=access)
        assert again.status_code == 200, why(again)
        assert again.json() == {"revoked_sessions": []}
        assert me(http, other["access_token"]).status_code == 200
    assert_error(refused_at_resource(resource, pair["access_token"]), 401, "token_revoked")


def test_a_revoked_access_token_is_refused_while_its_session_lives_on(
    service: Service, resource: ResourceApp
) -> None:
    """RFC 7009 revocation of an access token ends that token alone: it is ``token_revoked`` at the
    service and the resource server; the session refreshes and its new access token is admitted."""
    with service.client() as http:
        pair = service.login()
        assert whoami(resource, pair["access_token"]).status_code == 200
        assert http.post("/auth/revoke", json={"token": pair["access_token"]}).status_code == 200

        assert_error(me(http, pair["access_token"]), 401, "token_revoked")
        assert_error(
            http.get("/auth/sessions", headers=bearer(pair["access_token"])), 403, "insufficient_scope"
        )
        assert_error(refused_at_resource(resource, pair["access_token"]), 401, "token_revoked")
        renewed = refreshed(http, pair["refresh_token"])
        assert me(http, renewed["access_token"]).status_code == 200
    assert whoami(resource, renewed["access_token"]).status_code == 200
