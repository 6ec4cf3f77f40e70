"""Issue 6, acceptance 4: a tampered refresh cookie and a reused refresh token end the session, once.

The refresh token lives in the HttpOnly cookie ``keyturn_refresh``, out of the page's reach; the test
reads and writes it through the browser profile (``context.cookies()``, ``context.add_cookies()``) and
plays the attacker from outside with httpx. The grace period is 1 s here, so that a rotated token is
"reused" a second after its rotation. The pages idle (no API calls), so that the call which ends each
session is the page's next refresh, and the reason is what the token service answered to it:

- a tampered cookie does not verify: ``token_invalid`` (the session itself is untouched on the server);
- an old cookie used by an attacker after the page rotated it: the attacker is told
  ``refresh_token_reused`` and the session is revoked, so the page's next refresh hears
  ``session_revoked``;
- a cookie an attacker rotated first: the page's next refresh presents a rotated token past the grace
  period, and hears ``refresh_token_reused`` itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import BrowserContext

from ..e2e._http import why
from ..e2e._server import Cluster
from ._demo import ServerLog, Tab, open_tab, refresh_cookie, session_row, token_service

GRACE = 1
ENDED_NOTES = "() => document.querySelectorAll('#timeline li.session_ended').length"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """This module's token service: a rotated refresh token is a reuse one second after its rotation."""
    with token_service(tmp_path_factory.mktemp("service"), KEYTURN_GRACE_PERIOD=str(GRACE)) as group:
        yield group


def signed_in(context: BrowserContext, service: Cluster) -> Tab:
    """A signed-in, idle demo page that has just refreshed: its next refresh is seconds away."""
    tab = open_tab(context, service)
    tab.sign_in()
    tab.wait_refreshed()
    return tab


def attacker_refresh(service: Cluster, refresh_token: str) -> httpx.Response:
    """A refresh from outside the browser, as whoever copied the token would send it."""
    return httpx.post(service.server.url + "/auth/refresh", json={"refresh_token": refresh_token}, timeout=30)


def assert_ended_once(tab: Tab, reason: str, since: float) -> None:
    """The page ended its session once, for ``reason``, after the service answered its refresh with that
    code, and shows the sign-in form saying why."""
    tab.wait_ended()
    tab.page.wait_for_timeout(2000)  # time for a second end, were there one
    errors = tab.errors(since)
    assert tab.seen()["ended"] == [reason], errors
    assert tab.js(ENDED_NOTES) == 1
    assert errors == [("/auth/refresh", 401, reason)]  # nothing after it: the session was over
    tab.page.locator("#login").wait_for(state="visible")
    assert tab.shows_login() == (True, True, reason)
    assert tab.state == "ended"


def test_a_tampered_refresh_cookie_ends_the_session_with_token_invalid(
    service: Cluster, context: BrowserContext
) -> None:
    tab = signed_in(context, service)
    cookie = refresh_cookie(context)
    header, payload, signature = str(cookie["value"]).split(".")
    i = len(signature) // 2  # a character in the middle: every one of its bits is part of the signature
    forged = signature[:i] + ("B" if signature[i] == "A" else "A") + signature[i + 1 :]
    log = ServerLog(service)
    since = time.monotonic()

    context.add_cookies([{**cookie, "value": f"{header}.{payload}.{forged}"}])

    assert_ended_once(tab, "token_invalid", since)
    assert [r.status for r in log.refreshes()] == [401]
    # The forgery proves nothing about the session: it stays active on the server, with no reuse.
    assert session_row(service, tab.sid).state == "active"
    assert log.events("session.reuse_detected") == []


def test_an_old_refresh_token_used_by_an_attacker_ends_the_session_with_session_revoked(
    service: Cluster, context: BrowserContext
) -> None:
    tab = signed_in(context, service)
    stolen = str(refresh_cookie(context)["value"])
    tab.wait_refreshed()  # the page rotates it
    rotated = str(refresh_cookie(context)["value"]) != stolen
    assert rotated, "the page's refresh did not replace its refresh cookie"
    tab.page.wait_for_timeout((GRACE + 0.5) * 1000)  # past the grace period
    log = ServerLog(service)
    since = time.monotonic()

    reused = attacker_refresh(service, stolen)

    assert reused.status_code == 401, why(reused)
    assert reused.json()["error"] == "refresh_token_reused"
    assert_ended_once(tab, "session_revoked", since)
    assert session_row(service, tab.sid).state == "revoked"
    assert session_row(service, tab.sid).reason == "reuse"
    assert len(log.events("session.reuse_detected", tab.sid)) == 1
    assert [r.status for r in log.refreshes()] == [401, 401]  # the attacker's, then the page's


def test_a_refresh_token_an_attacker_rotated_first_ends_the_session_with_refresh_token_reused(
    service: Cluster, context: BrowserContext
) -> None:
    tab = signed_in(context, service)
    log = ServerLog(service)
    since = time.monotonic()

    stolen = attacker_refresh(service, str(refresh_cookie(context)["value"]))

    assert stolen.status_code == 200, why(stolen)  # the attacker now holds the session's newest token
    # The page's next refresh, seconds later (past the grace period), presents the token the attacker
    # rotated: a reuse.
    assert_ended_once(tab, "refresh_token_reused", since)
    assert session_row(service, tab.sid).state == "revoked"
    assert session_row(service, tab.sid).reason == "reuse"
    assert len(log.events("session.reuse_detected", tab.sid)) == 1
    assert [r.status for r in log.refreshes()] == [200, 401]
    # And the attacker's token died with the session.
    after = attacker_refresh(service, stolen.json()["refresh_token"])
    assert after.status_code == 401, why(after)
    assert after.json()["error"] == "session_revoked"
