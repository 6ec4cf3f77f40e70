"""``KeyturnRequestsAuth``: ``KeyturnAuth``'s behaviour for a real ``requests.Session`` over real HTTP.

``requests`` has no auth flow: the adapter sets the header and resends from a response hook, on the
connection adapter, so the retried request must carry the new token and its answer must be what the
application gets (with the refused one in ``history``). The server is the live Keyturn service with its
``/resource`` route, in this process, on a real socket.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from keyturn.client import SessionEnded, TokenManager
from keyturn.client.requests_auth import KeyturnRequestsAuth

from ._client_live import Canned, Harness, MinRandom

RESOURCE = "/resource"


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


def _auth(manager: TokenManager, **kwargs: object) -> KeyturnRequestsAuth:
    kwargs.setdefault("rng", MinRandom())
    return KeyturnRequestsAuth(manager, **kwargs)  # type: ignore[arg-type]


def _sent(h: Harness, method: str = "GET") -> list[str | None]:
    return h.live.ctl.tokens_sent(method, RESOURCE)


def test_the_header_carries_the_current_token(h: Harness, session: requests.Session) -> None:
    manager = h.manager()
    pair = h.login(manager)
    session.auth = _auth(manager)

    response = session.get(h.live.url + RESOURCE, timeout=30)

    assert response.status_code == 200
    assert response.json()["subject"] == "alice"
    sent_current = _sent(h) == [pair.access_token]
    assert sent_current


def test_token_expired_costs_one_refresh_and_one_retry(h: Harness, session: requests.Session) -> None:
    manager = h.manager()
    old = h.login(manager)
    h.live.clock.advance(1000)  # expired at the service, not yet by the client's clock
    session.auth = _auth(manager)

    response = session.get(h.live.url + RESOURCE, timeout=30)

    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert h.live.refreshes() == 1
    assert manager.tokens is not None
    old_then_new = _sent(h) == [old.access_token, manager.tokens.access_token]
    assert old_then_new
    carried_new = response.request.headers["Authorization"] == f"Bearer {manager.tokens.access_token}"
    assert carried_new

    again = session.get(h.live.url + RESOURCE, timeout=30)  # the session's next request: no more refresh
    assert again.status_code == 200
    assert h.live.refreshes() == 1


def test_never_more_than_one_retry_for_a_401(h: Harness, session: requests.Session) -> None:
    manager = h.manager()
    h.login(manager)
    h.live.ctl.answer("GET", RESOURCE, *[Canned.error(401, "token_expired")] * 5)
    session.auth = _auth(manager)

    response = session.get(h.live.url + RESOURCE, timeout=30)

    assert response.status_code == 401
    assert h.live.ctl.count("GET", RESOURCE) == 2
    assert h.live.refreshes() == 1


def test_503_on_get_is_retried(h: Harness, session: requests.Session) -> None:
    manager = h.manager()
    h.login(manager)
    h.live.ctl.answer("GET", RESOURCE, Canned.error(503, "server_error"))
    session.auth = _auth(manager)

    response = session.get(h.live.url + RESOURCE, timeout=30)

    assert response.status_code == 200
    assert h.live.ctl.count("GET", RESOURCE) == 2
    assert [r.status_code for r in response.history] == [503]


def test_503_on_get_is_retried_up_to_retries_only(h: Harness, session: requests.Session) -> None:
    manager = h.manager()
    h.login(manager)
    h.live.ctl.answer("GET", RESOURCE, *[Canned.error(503, "server_error")] * 5)
    session.auth = _auth(manager, retries=2)

    response = session.get(h.live.url + RESOURCE, timeout=30)

    assert response.status_code == 503
    assert h.live.ctl.count("GET", RESOURCE) == 3


def test_429_waits_retry_after(h: Harness, session: requests.Session) -> None:
    manager = h.manager()
    h.login(manager)
    h.live.ctl.answer("GET", RESOURCE, Canned.error(429, "rate_limited", retry_after="1"))
    session.auth = _auth(manager)

    started = time.monotonic()
    response = session.get(h.live.url + RESOURCE, timeout=30)

    assert response.status_code == 200
    assert time.monotonic() - started >= 1.0


def test_post_is_not_retried_unless_the_application_opts_in(h: Harness, session: requests.Session) -> None:
    manager = h.manager()
    h.login(manager)
    h.live.ctl.answer("POST", RESOURCE, Canned.error(503, "server_error"))
    session.auth = _auth(manager)

    assert session.post(h.live.url + RESOURCE, json={"n": 1}, timeout=30).status_code == 503
    assert h.live.ctl.count("POST", RESOURCE) == 1

    h.live.ctl.answer("POST", RESOURCE, Canned.error(503, "server_error"))
    session.auth = _auth(manager, retry_unsafe=True)
    assert session.post(h.live.url + RESOURCE, json={"n": 2}, timeout=30).status_code == 200
    assert h.live.ctl.count("POST", RESOURCE) == 3


def test_token_revoked_costs_one_refresh_which_ends_the_session(
    h: Harness, session: requests.Session
) -> None:
    manager = h.manager()
    pair = h.login(manager)
    h.live.raw("POST", "/auth/logout", headers={"Authorization": f"Bearer {pair.access_token}"})
    session.auth = _auth(manager)

    with pytest.raises(SessionEnded) as ended:
        session.get(h.live.url + RESOURCE, timeout=30)

    assert ended.value.reason == "session_revoked"
    assert h.ended == ["session_revoked"]
    assert h.live.refreshes() == 1
    hits = h.live.ctl.count("GET", RESOURCE)
    with pytest.raises(SessionEnded):
        session.get(h.live.url + RESOURCE, timeout=30)
    assert h.live.ctl.count("GET", RESOURCE) == hits
