"""Issue 6, acceptance 2: four tabs of one origin share one session and rotate it once per expiry.

Four pages of one browser profile (one cookie jar, one localStorage, one BroadcastChannel, one Web Lock)
each send 50 ``session.fetch("/auth/me")`` at random moments over two and a half access-token lifetimes,
so that every tab's requests find the token due and all four race to refresh it, again and again. One tab
refreshes (the Web Lock), the others take on its tokens (the channel). Had two tabs refreshed for one
expiry, the second would have presented a refresh token already rotated: a replay (within the grace
period), a reuse, or a second rotation moments after the first.

The service logs at debug level here, so each rotation and replay is an event in its log.

Issue 17, acceptance 3: the same with ``dpop: true`` against a service that requires DPoP and binds access
tokens too, so that every login, refresh and API call of the four tabs carries a proof by the one key they
share (IndexedDB).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext

from ..e2e._server import Cluster
from ._demo import (
    DPOP_SETTINGS,
    LIFETIME,
    SHORTEST_PERIOD,
    ServerLog,
    gaps,
    open_tab,
    session_row,
    token_service,
)

TABS = 4
REQUESTS = 50
SPREAD = 2.5 * LIFETIME
"""Seconds over which each tab sends its requests."""
LATE = 0.3
"""Seconds a refresh may reach the server late (a busy machine), bringing it closer to the next one."""

# Each tab sends its requests at random moments over the spread (several often at once), then keeps
# every status, or the error a request threw.
_FIRE = """async ([count, spread]) => {
  const one = async () => {
    await new Promise((resolve) => setTimeout(resolve, Math.random() * spread * 1000));
    try {
      return (await window.keyturnDemo.session.fetch("/auth/me")).status;
    } catch (error) {
      return `${error.name}: ${error.message}`;
    }
  };
  window.__fired = undefined;
  window.__fired = await Promise.all(Array.from({ length: count }, one));
}"""


@pytest.fixture(scope="module", params=[False, True], ids=["bearer", "dpop"])
def dpop(request: pytest.FixtureRequest) -> bool:
    """Whether the pages bind their session to a DPoP key (and the service requires it)."""
    return bool(request.param)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, dpop: bool) -> Iterator[Cluster]:
    """This module's token service, logging every rotation and replay (debug level)."""
    settings = DPOP_SETTINGS if dpop else {}
    with token_service(tmp_path_factory.mktemp("service"), log_level="debug", **settings) as group:
        yield group


def test_four_tabs_rotate_once_per_expiry_and_every_request_succeeds(
    service: Cluster, context: BrowserContext, dpop: bool
) -> None:
    first = open_tab(context, service, dpop=dpop)
    first.sign_in()
    assert (session_row(service, first.sid).jkt is not None) == dpop
    tabs = [first] + [open_tab(context, service, dpop=dpop) for _ in range(TABS - 1)]
    for tab in tabs[1:]:  # the new tabs took on the first tab's session
        assert tab.state == "active"
    # Counts are taken just after a refresh, when none is in flight (the next is seconds away).
    first.wait_refreshed()
    log = ServerLog(service)
    gen = session_row(service, first.sid).gen
    started = time.monotonic()

    for tab in tabs:  # all four at once: the promise is kept in the page, not awaited here
        tab.js(f"() => {{ window.__run = ({_FIRE})([{REQUESTS}, {SPREAD}]); }}")
    for tab in tabs:
        tab.wait_for("() => Array.isArray(window.__fired)", SPREAD + 60)
    fired = [tab.js("() => window.__fired") for tab in tabs]

    first.wait_refreshed()
    rotations = session_row(service, first.sid).gen - gen
    refreshes = log.refreshes()
    elapsed = time.monotonic() - started
    rotated = log.events("session.rotated", first.sid)
    replayed = log.events("session.replayed", first.sid)
    # The expiries the run crossed: one per refresh period of a single tab (at its shortest, less a little
    # for a refresh answered late).
    expiries = math.floor(elapsed / (SHORTEST_PERIOD - LATE)) + 1
    closest = min(gaps([r.at for r in refreshes]), default=math.inf)
    report = (
        f"{rotations} rotations for at most {expiries} expiries in {elapsed:.1f} s; {len(refreshes)} refresh"
        f" calls ({len(replayed)} replayed), closest {closest:.2f} s apart"
    )
    print(report)

    for statuses in fired:
        assert statuses == [200] * REQUESTS, report
    assert 1 <= rotations <= expiries, report
    assert len(rotated) == rotations, report
    assert replayed == [], report
    assert len(refreshes) == rotations, report  # each refresh call a rotation
    assert {r.status for r in refreshes} == {200}, report
    assert closest > 1.0, report  # no two rotations for one expiry
    assert log.events("session.reuse_detected") == []
    assert session_row(service, first.sid).state == "active"
    for tab in tabs:
        assert tab.state == "active"
        assert tab.seen()["ended"] == []
        # Every tab's proofs (dated by the offset the tabs share) behind this machine's one clock.
        assert tab.proofs_ahead() == [], report
        assert bool(tab.proofs) == dpop, report
    # Every tab ended up with the newest tokens (its generation is the shared state's).
    generations = {tab.generation() for tab in tabs}
    assert len(generations) == 1, f"the tabs disagree: generations {sorted(generations)}"
