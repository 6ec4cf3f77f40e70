"""The demo page itself: signing in (and failing to), logging out everywhere, what it looks like."""

from __future__ import annotations

import re
import time
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext

from ..e2e._server import Cluster
from ._demo import ServerLog, open_tab, session_row, token_service


def test_a_wrong_password_shows_an_error_and_keeps_the_form(
    service: Cluster, context: BrowserContext
) -> None:
    """The user is told, and nothing else happens: no session, no "ended" notice."""
    tab = open_tab(context, service)
    tab.sign_in(password="not-the-password")

    error = tab.page.locator("#login-error")
    error.wait_for(state="visible")
    assert error.inner_text() == "Wrong username or password."
    assert tab.statuses("POST", "/auth/login") == [401]
    assert tab.shows_login() == (True, True, None)
    assert tab.state == "signed_out"
    assert tab.seen()["ended"] == []

    tab.sign_in()  # the right password then works, and clears the error
    assert tab.page.locator("#login-error").is_hidden()
    assert tab.state == "active"


def test_log_out_everywhere_shows_the_login_form_in_every_tab_and_browser(
    service: Cluster, browser: Browser, context: BrowserContext
) -> None:
    """ "Log out everywhere" in one tab: its other tab hears at once (the channel), another browser with a
    session of the same user on its next call to the service."""
    first = open_tab(context, service)
    first.sign_in()
    second = open_tab(context, service)  # the same profile: it takes on the first tab's session
    second.wait_for("() => window.keyturnDemo.session.state === 'active'", 15)
    assert second.page.locator("#live").is_visible()
    other_browser = browser.new_context()
    try:
        elsewhere = open_tab(other_browser, service)
        elsewhere.sign_in()
        log = ServerLog(service)

        first.page.click("#logout-all")

        first.wait_ended()
        second.wait_ended()
        elsewhere.wait_ended()  # at its next refresh, a few seconds away at most
        assert first.seen()["ended"] == ["logout"]
        assert second.seen()["ended"] in (["logout"], ["session_revoked"])
        # The other browser idles: its first call to the service is the refresh, refused as revoked.
        assert elsewhere.seen()["ended"] == ["session_revoked"]
        for tab in (first, second, elsewhere):
            tab.page.locator("#login").wait_for(state="visible")
            assert tab.shows_login() == (True, True, tab.seen()["ended"][0])
            assert tab.page.locator("#ended").is_visible()
        assert [r.status for r in log.requests("POST", "/auth/logout-all")] == [200]
        for sid in (first.sid, elsewhere.sid):
            assert session_row(service, sid).state == "revoked"
    finally:
        other_browser.close()


def test_a_screenshot_of_the_signed_in_page(
    service: Cluster, context: BrowserContext, tmp_path: Path
) -> None:
    """The signed-in page renders: a non-empty PNG under the test's temporary directory."""
    tab = open_tab(context, service)
    tab.sign_in()
    tab.page.locator("#who").filter(has_text="signed in as alice").wait_for()

    shot = tmp_path / "signed-in.png"
    tab.page.screenshot(path=shot, full_page=True)

    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 1000


def test_tamper_costs_one_refused_call_and_one_refresh_and_the_session_goes_on(
    service: Cluster, context: BrowserContext
) -> None:
    """ "Tamper with the access token": the API refuses the call (401 ``token_invalid``), the client refreshes
    once and sends it again with the new token, and the session lives on, here and on the server."""
    tab = open_tab(context, service)
    tab.sign_in()
    tab.wait_refreshed()  # just after a refresh: the next one is seconds away
    log = ServerLog(service)
    before = tab.counts()
    since = time.monotonic()

    tab.page.click("#tamper")
    tab.wait_for("(n) => window.keyturnDemo.counts().ok > n", 15, before["ok"])

    report = f"page answers {tab.errors(since)}, refreshes {[r.status for r in log.refreshes()]}"
    assert tab.counts()["failed"] == before["failed"], report  # the application saw one successful call
    assert [r.status for r in log.requests("GET", "/auth/me")] == [401, 200], report
    assert tab.errors(since) == [("/auth/me", 401, "token_invalid")], report
    assert [r.status for r in log.refreshes()][:1] == [200], report
    assert tab.state == "active"
    assert tab.seen()["ended"] == []
    assert session_row(service, tab.sid).state == "active"


def test_a_session_the_page_gives_up_is_revoked_on_the_server_too(
    service: Cluster, context: BrowserContext
) -> None:
    """Issue 19: every call tampered, so the token a refresh brought is refused too: the page ends the
    session (``token_invalid``) and tells the service with one logout, which revokes it there as well."""
    tab = open_tab(context, service)
    tab.sign_in()
    tab.wait_refreshed()
    log = ServerLog(service)
    tab.js(
        "() => Object.defineProperty(window.keyturnDemo.knobs, 'tamper', {get: () => true, set: () => {}})"
    )

    tab.js("() => window.keyturnDemo.callApi()")
    tab.wait_ended()

    assert tab.seen()["ended"] == ["token_invalid"]
    assert [r.status for r in log.requests("GET", "/auth/me")] == [401, 401]
    deadline = time.monotonic() + 15
    while session_row(service, tab.sid).state != "revoked" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [r.status for r in log.requests("POST", "/auth/logout")] == [200]
    assert session_row(service, tab.sid).state == "revoked"


def test_the_timeline_speaks_plainly_when_the_service_cannot_be_reached(
    service: Cluster, context: BrowserContext
) -> None:
    """Issue 19: offline, the refresh and an API call fail; the timeline says so in words a person reads,
    never the browser's ``TypeError: Failed to fetch``; back online, the session recovers."""
    tab = open_tab(context, service)
    tab.sign_in()
    timeline = tab.page.locator("#timeline")

    tab.page.click("#offline")
    tab.wait_for("() => window.keyturnDemo.session.state === 'degraded'", 15)
    tab.js("() => window.keyturnDemo.callApi()")
    tab.page.locator("#timeline li.failed").filter(has_text="API call failed").wait_for(timeout=30_000)

    text = timeline.inner_text()
    assert "refresh failed: this tab is offline" in text
    # while the token is still valid the call itself meets the network; after, no token can be had
    assert re.search(
        r"API call failed: (this tab is offline|no usable access token \(refresh failing)", text
    ), text
    assert "TypeError" not in text
    assert "Failed to fetch" not in text
    tab.page.click("#offline")
    tab.wait_for("() => window.keyturnDemo.session.state === 'active'", 15)


def test_with_long_lived_tokens_the_page_says_how_to_shorten_them(
    service: Cluster, context: BrowserContext, tmp_path: Path
) -> None:
    """Issue 19: with 15-minute tokens nothing shows for minutes; the page says how to start the service
    with short ones. With this module's 5 s tokens the hint stays hidden."""
    tab = open_tab(context, service)
    tab.sign_in()
    assert tab.page.locator("#short-tokens").is_hidden()

    with token_service(tmp_path / "long", KEYTURN_ACCESS_TOKEN_LIFETIME="900") as long_lived:
        other = open_tab(context, long_lived)
        other.sign_in()
        hint = other.page.locator("#short-tokens")
        hint.wait_for(state="visible")
        assert "KEYTURN_ACCESS_TOKEN_LIFETIME=20 make run" in hint.inner_text()
        assert "15 minutes" in hint.inner_text()
