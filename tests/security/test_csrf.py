"""Cross-site requests in cookie mode: the refresh cookie alone, as a form or a ``fetch`` from another
site would send it, without the ``X-Keyturn-CSRF`` header.

docs/contract.md (Cookie mode): "A call that relies on the cookie (refresh, logout, logout-all) must carry
the header ``X-Keyturn-CSRF``". The contract does not name the code of the refusal; these tests expect 400
``invalid_request``, what tests/e2e/test_api_cookies.py holds a bare cookie call to. Here the requests carry
what a cross-site one carries (an ``Origin`` of another site, ``Sec-Fetch-Site: cross-site``) and the bodies
a form or a no-preflight ``fetch`` can send; each is refused and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ..e2e._http import assert_error, me, why
from ._services import Service, running_embedded, running_service

CROSS_SITE = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}
BODIES: dict[str, tuple[dict[str, str], bytes]] = {
    "no-body": ({}, b""),
    "form": ({"Content-Type": "application/x-www-form-urlencoded"}, b"refresh_token=&x=1"),
    "text-plain-json": ({"Content-Type": "text/plain"}, b'{"x": 1}'),
    "multipart": (
        {"Content-Type": "multipart/form-data; boundary=b"},
        b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--\r\n',
    ),
    "json-without-token": ({"Content-Type": "application/json"}, b"{}"),
}


@dataclass
class CookieSession:
    service: Service
    body: dict[str, Any]
    cookie: str = ""


@pytest.fixture(scope="module", params=["serve", "embedded"])
def cookie_service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """``keyturn serve --cookie-mode``, or the example app embedding Keyturn with ``COOKIE_MODE``."""
    place = tmp_path_factory.mktemp(f"cookie-{request.param}")
    if request.param == "embedded":
        with running_embedded("sqlite", place, {"KEYTURN_COOKIE_MODE": "true"}) as service:
            yield service
        return
    with running_service("sqlite", place, None, "--cookie-mode") as service:
        yield service


@pytest.fixture
def session(cookie_service: Service) -> CookieSession:
    with cookie_service.client() as http:
        answer = http.post("/auth/login", json=cookie_service.credentials())
    assert answer.status_code == 200, why(answer)
    assert "refresh_token" not in answer.json()
    cookie = answer.cookies.get("keyturn_refresh")
    assert cookie
    return CookieSession(cookie_service, answer.json(), cookie)


def unchanged(session: CookieSession) -> None:
    """The session is active at its first generation and its access token still works."""
    stored = session.service.session(session.body["session_id"])
    assert (stored.state, stored.gen) == ("active", 0)
    with session.service.client() as http:
        assert me(http, session.body["access_token"]).status_code == 200


@pytest.mark.parametrize("body", sorted(BODIES))
@pytest.mark.parametrize("path", ["/auth/refresh", "/auth/logout", "/auth/logout-all"])
def test_a_cross_site_request_with_the_cookie_alone_is_refused(
    session: CookieSession, path: str, body: str
) -> None:
    """No custom header, whatever the body: 400 ``invalid_request``; nothing rotated or ended."""
    headers, content = BODIES[body]
    with httpx.Client(base_url=session.service.url, timeout=30) as http:
        answer = http.post(
            path,
            content=content,
            headers={**CROSS_SITE, **headers, "Cookie": f"keyturn_refresh={session.cookie}"},
        )
    assert_error(answer, 400, "invalid_request")
    assert "set-cookie" not in answer.headers
    unchanged(session)


@pytest.mark.parametrize("path", ["/auth/refresh", "/auth/logout", "/auth/logout-all"])
def test_a_cross_site_get_with_the_cookie_is_405(session: CookieSession, path: str) -> None:
    """A navigation or an image tag can only GET: the state-changing routes do not answer it."""
    with httpx.Client(base_url=session.service.url, timeout=30) as http:
        answer = http.get(path, headers={**CROSS_SITE, "Cookie": f"keyturn_refresh={session.cookie}"})
    assert_error(answer, 405, "invalid_request")
    unchanged(session)


def test_the_same_request_with_the_header_is_answered(session: CookieSession) -> None:
    """The control: the header is all that was missing (a same-site page's script can send it)."""
    with httpx.Client(base_url=session.service.url, timeout=30) as http:
        answer = http.post(
            "/auth/refresh",
            headers={"X-Keyturn-CSRF": "1", "Cookie": f"keyturn_refresh={session.cookie}"},
        )
    assert answer.status_code == 200, why(answer)
    assert session.service.session(session.body["session_id"]).gen == 1
