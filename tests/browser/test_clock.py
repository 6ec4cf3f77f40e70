"""Issue 6, acceptance 5: the browser's clock, driven by Playwright's clock API.

- Ten minutes ahead of the server, and ten minutes behind (two browser profiles side by side): the client
  measures the offset from ``server_time`` and schedules in server time, so its requests keep succeeding
  and it refreshes at the same pace as in acceptance 1.
- Asleep: the tab is hidden, its timers stop (the clock is paused) and its clock then jumps past the
  access token's expiry without firing a timer, as after a laptop's lid was closed; the server's time has
  passed that expiry too. On waking (visible again, ``visibilitychange``) the first request must be
  preceded by a refresh, and none may fail for want of a valid token.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Browser, BrowserContext

from ..e2e._server import Cluster
from ._demo import LIFETIME, REFRESH_PERIOD, STALLS, ServerLog, Tab, gaps, open_tab, session_row
from ._sends import page_clock, sends, unexplained

SKEW = 600.0
RUN = 25.0

_VISIBILITY = """(hidden) => {
  for (const [name, value] of [["hidden", hidden], ["visibilityState", hidden ? "hidden" : "visible"]]) {
    Object.defineProperty(document, name, { configurable: true, get: () => value });
  }
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_a_clock_ten_minutes_ahead_or_behind_refreshes_on_time_in_server_time(
    browser: Browser, service: Cluster
) -> None:
    contexts = [browser.new_context(), browser.new_context()]
    try:
        tabs: list[Tab] = []
        for context, skew in zip(contexts, (SKEW, -SKEW), strict=True):
            context.clock.install(time=time.time() + skew)  # before the page loads; then it runs on
            tabs.append(open_tab(context, service))
        for tab in tabs:
            tab.sign_in()
        ahead = tabs[0]
        clocks = [tab.js("() => Date.now() / 1000") - time.time() for tab in tabs]
        offsets = [tab.js("() => window.keyturnDemo.session.clockOffset / 1000") for tab in tabs]
        log = ServerLog(service)
        gens = [session_row(service, tab.sid).gen for tab in tabs]

        started = time.monotonic()
        for tab in tabs:
            tab.auto(True)
        ahead.page.wait_for_timeout(RUN * 1000)
        for tab in tabs:
            tab.auto(False)
        elapsed = time.monotonic() - started
        ahead.page.wait_for_timeout(1000)

        expected = elapsed / REFRESH_PERIOD
        rotations = [session_row(service, tab.sid).gen - gen for tab, gen in zip(tabs, gens, strict=True)]
        counts = [tab.counts() for tab in tabs]
        sent = [sends(tab.page) for tab in tabs]
        late = [[s for s in tab_sent if s.status == 401] for tab_sent in sent]
        report = (
            f"browser clocks {clocks[0]:+.1f} s and {clocks[1]:+.1f} s off, measured offsets"
            f" {offsets[0]:+.1f} s and {offsets[1]:+.1f} s; rotations {rotations} in {elapsed:.1f} s"
            f" (expected about {expected:.1f} each); calls {counts}; answered 401 (allowed only if sent in"
            f" time and late on arrival: a busy machine): {[len(found) for found in late]}"
        )
        print(report)

        # The skew is real (the browsers' clocks), and the client measured it (server - browser).
        assert clocks == [pytest.approx(SKEW, abs=5), pytest.approx(-SKEW, abs=5)], report
        assert offsets == [pytest.approx(-SKEW, abs=5), pytest.approx(SKEW, abs=5)], report
        for tab, done, count, tab_sent in zip(tabs, rotations, counts, sent, strict=True):
            assert count["failed"] == 0, report
            assert count["ok"] >= RUN / 0.2 / 2, report
            # Only refusals of tokens sent in time that reached a slow service expired (``_sends.py``),
            # judged in the service's time: the page's clock is read against this machine's.
            assert unexplained(tab_sent, *page_clock(tab.page)) == [], report
            assert set(tab.statuses("GET", "/auth/me", since=started)) <= {200, 401}, report
            assert 0.6 * expected <= done <= 1.4 * expected + 1, report  # + 1: a refresh at either end
            assert tab.seen()["ended"] == [], report
            assert tab.state == "active", report
        calls = log.requests("GET", "/auth/me")
        assert {r.status for r in calls} <= {200, 401}, report
        assert [r.status for r in calls].count(401) <= sum(map(len, late)), report  # each seen and judged
        assert {r.status for r in log.refreshes()} == {200}, report
        # Neither refreshed late: each tab's refreshes, as it saw them answered, came less than a lifetime
        # (less the second ``expires_in`` may round off) apart, but for at most ``STALLS`` gaps, each the
        # mark of a stall of the loaded machine (Chromium's or the test's, which hears the answers).
        for tab in tabs:
            answered = [a.at for a in tab.answers if a.path == "/auth/refresh" and a.at >= started]
            late = [round(gap, 2) for gap in gaps(answered) if gap >= LIFETIME - 1]
            assert len(late) <= STALLS, (late, report)
    finally:
        for context in contexts:
            context.close()


def test_a_tab_asleep_past_the_expiry_refreshes_before_its_first_request_on_waking(
    service: Cluster, context: BrowserContext
) -> None:
    context.clock.install(time=time.time())
    tab = open_tab(context, service)
    tab.sign_in()
    tab.auto(True)
    tab.wait_for("() => window.keyturnDemo.counts().ok >= 10", 15)
    failed = tab.counts()["failed"]

    # Sleep, just after a refresh (none in flight to let a held-back call out): hidden, and no timer runs
    # from here on (the demo's 200 ms calls stop with them).
    tab.wait_refreshed()
    tab.js(_VISIBILITY, True)
    context.clock.pause_at(tab.js("() => Date.now() / 1000") + 0.5)
    tab.page.wait_for_timeout(500)  # calls already sent are answered
    expires = tab.js("() => window.keyturnDemo.session.expiresAt") / 1000
    log = ServerLog(service)
    while time.time() < expires + 1.5:  # the server's time passes the access token's expiry (the
        # client's reckoning of it may be up to a second early: ``expires_in`` is whole seconds)
        tab.page.wait_for_timeout(250)
    # The lid opens: the browser's clock is now, past the expiry, and no timer fired meanwhile.
    context.clock.set_system_time(time.time())
    asleep = log.requests()
    tab.js(_VISIBILITY, False)
    context.clock.resume()
    tab.wait_for("(ok) => window.keyturnDemo.counts().ok >= ok + 10", 30, tab.counts()["ok"])
    tab.auto(False)
    tab.page.wait_for_timeout(500)

    woke = log.requests()
    order = [f"{r.method} {r.path} {r.status}" for r in woke]
    report = f"the server's first answers after the wake-up: {order[:4]}"
    print(report)
    assert asleep == [], report  # nothing was sent while asleep
    assert order[0] == "POST /auth/refresh 200", report
    assert all(r.status == 200 for r in woke), report  # no request refused for an expired token
    assert order[1] == "GET /auth/me 200", report  # one refresh on waking, not one per wake-up signal
    assert tab.counts()["failed"] == failed, report
    assert tab.state == "active"
    assert tab.seen()["ended"] == []
