"""Issue 20, acceptance 1: four tabs in body mode never present a refresh token twice, against SimpleJWT
(no grace period: a token presented twice is refused, blacklisted) and against Keyturn (where it would be a
replay).

Four pages of one browser profile (one ``localStorage``, one BroadcastChannel, one set of Web Locks) hold one
body-mode session: the pair lives in ``localStorage``, and each page calls the API through
``session.fetch`` every 200 ms for a minute while access tokens live 5 s. Chromium gives each page its own
copy of ``localStorage``, updated a moment after another page writes it, so the tab that takes the refresh
lock right after another tab refreshed may still read the old pair: the client must learn from the lock
manager that a newer generation exists and wait for it rather than present the rotated token.

The page is served by Playwright on the server's origin (``/tabs-test/``, with the bundle beside it) so that
the same harness runs against both servers; the bundle is ``clients/js/dist/keyturn.js``, or the file named
by ``KEYTURN_JS_BUNDLE``. ``KEYTURN_TABS_RUNS`` (default 1) repeats each test, ``KEYTURN_TABS_SECONDS``
(default 60) sets how long the tabs call. Tokens are compared, never shown: messages carry counts only.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, Request, Response, Route

from ..e2e._server import Cluster
from ..e2e._simplejwt import SimpleJWTServer, simplejwt_server
from ._demo import ServerLog, token_service

BUNDLE = Path(
    os.environ.get("KEYTURN_JS_BUNDLE")
    or Path(__file__).resolve().parents[2] / "clients" / "js" / "dist" / "keyturn.js"
)
RUNS = int(os.environ.get("KEYTURN_TABS_RUNS", "1"))
SECONDS = float(os.environ.get("KEYTURN_TABS_SECONDS", "60"))
TABS = 4
ACCESS = 5
"""Seconds an access token lives, at both servers."""
INTERVAL = 200
"""Milliseconds between each page's calls."""
PAGE_PATH = "/tabs-test/"

# {endpoints} and {api} are filled in per server. What each page's calls got, as in the SimpleJWT page.
PAGE = """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>Keyturn client, body mode, tabs</title>
<script type="module">
import {{ createSession, SIMPLEJWT }} from "./keyturn.js";

const session = createSession({{ mode: "body", endpoints: {endpoints}, storage: localStorage }});
const results = {{ calls: 0, statuses: {{}}, errors: {{}}, ended: [], refreshed: 0 }};
const bump = (counts, key) => (counts[key] = (counts[key] || 0) + 1);
session.on("session_ended", (reason) => results.ended.push(reason));
session.on("refreshed", () => results.refreshed++);
async function call() {{
  results.calls++;
  try {{
    bump(results.statuses, (await session.fetch({api})).status);
  }} catch (error) {{
    bump(results.errors, `${{error.name}}: ${{error.reason ?? ""}}`);
  }}
}}
let timer;
window.session = session;
window.results = results;
window.calls = {{
  start: (ms) => (clearInterval(timer), (timer = setInterval(call, ms))),
  stop: () => clearInterval(timer),
}};
window.ready = true;
</script>
</html>
"""

_SETTLED = """() => {
  const r = window.results;
  const sum = (counts) => Object.values(counts).reduce((a, b) => a + b, 0);
  return sum(r.statuses) + sum(r.errors) == r.calls;
}"""


@dataclass(frozen=True)
class Target:
    """A server as the page sees it: its origin, endpoint shape, refresh path and field, and an API path."""

    origin: str
    endpoints: str
    refresh_path: str
    refresh_field: str
    api: str
    username: str
    password: str = field(repr=False)


@dataclass
class Presented:
    """Every refresh token the pages presented (kept to count repeats, never shown), with which page sent it,
    when (monotonic) and how it went: the status, or the failure Chromium reported."""

    tokens: list[str] = field(default_factory=list, repr=False)
    refresh_path: str = ""
    refresh_field: str = ""
    sent: list[tuple[int, float, Request]] = field(default_factory=list, repr=False)
    outcomes: dict[int, str] = field(default_factory=dict)
    """By ``id`` of the request: its status, or its failure."""

    def recorder(self, page: int) -> Callable[[Request], None]:
        def record(request: Request) -> None:
            if request.method != "POST" or urlsplit(request.url).path != self.refresh_path:
                return
            body = json.loads(request.post_data or "{}")
            self.tokens.append(str(body.get(self.refresh_field)))
            self.sent.append((page, time.monotonic(), request))

        return record

    def answered(self, response: Response) -> None:
        self.outcomes[id(response.request)] = str(response.status)

    def failed(self, request: Request) -> None:
        self.outcomes[id(request)] = f"failed: {request.failure}"

    def repeated(self) -> int:
        """How many presentations were of a token presented before."""
        return sum(n - 1 for n in Counter(self.tokens).values())

    def repeats(self) -> list[tuple[int, float, str]]:
        """For each presentation of a token presented more than once: page, time (s from the first
        refresh) and outcome."""
        counts = Counter(self.tokens)
        start = self.sent[0][1] if self.sent else 0.0
        found = []
        for token, (page, at, request) in zip(self.tokens, self.sent, strict=True):
            if counts[token] > 1:
                found.append((page, round(at - start, 3), self.outcomes.get(id(request), "no answer")))
        return found


def open_pages(context: BrowserContext, target: Target, presented: Presented) -> list[Page]:
    script = BUNDLE.read_bytes()
    html = PAGE.format(
        endpoints="SIMPLEJWT" if target.endpoints == "simplejwt" else "undefined", api=json.dumps(target.api)
    )

    def serve(route: Route) -> None:
        if urlsplit(route.request.url).path.endswith("/keyturn.js"):
            route.fulfill(status=200, content_type="text/javascript", body=script)
        else:
            route.fulfill(status=200, content_type="text/html; charset=utf-8", body=html)

    context.route(target.origin + PAGE_PATH + "**", serve)
    pages = []
    for index in range(TABS):
        page = context.new_page()
        page.on("request", presented.recorder(index))
        page.on("response", presented.answered)
        page.on("requestfailed", presented.failed)
        page.goto(target.origin + PAGE_PATH)
        page.wait_for_function("() => window.ready === true", timeout=30_000)
        page.evaluate("() => window.session.ready")
        pages.append(page)
    return pages


def run_tabs(context: BrowserContext, target: Target) -> tuple[list[dict[str, Any]], Presented, str]:
    """Signs in in the first tab, has every tab call the API for ``SECONDS``; returns each tab's results,
    the refresh tokens presented, and a one-line report."""
    if not BUNDLE.is_file():
        pytest.fail(f"{BUNDLE} is missing: `cd clients/js && npm run build` builds it")
    presented = Presented(refresh_path=target.refresh_path, refresh_field=target.refresh_field)
    pages = open_pages(context, target, presented)
    pages[0].evaluate("([u, p]) => window.session.login(u, p)", [target.username, target.password])
    for page in pages:
        page.wait_for_function("() => window.session.state == 'active'", timeout=30_000, polling=100)
    started = time.monotonic()
    for page in pages:
        page.evaluate("(ms) => window.calls.start(ms)", INTERVAL)
    pages[0].wait_for_timeout(SECONDS * 1000)
    for page in pages:
        page.evaluate("() => window.calls.stop()")
    for page in pages:
        page.wait_for_function(_SETTLED, timeout=60_000, polling=100)
    elapsed = time.monotonic() - started
    results = [dict(page.evaluate("() => window.results")) for page in pages]
    # Closed, the pages refresh no more, and every request they sent has been heard (Playwright hands its
    # events over only during a call): the server's counts, read next, match the presented tokens.
    for page in pages:
        page.close()
    calls = sum(r["calls"] for r in results)
    logged_out = sum(1 for r in results if r["ended"])
    errors = Counter(key for r in results for key, n in r["errors"].items() for _ in range(n))
    statuses = Counter(key for r in results for key, n in r["statuses"].items() for _ in range(n))
    report = (
        f"{TABS} tabs, {elapsed:.0f} s, {calls} calls: statuses {dict(statuses)}, errors {dict(errors)};"
        f" {len(presented.tokens)} refreshes, {presented.repeated()} tokens presented twice"
        f" {presented.repeats() if presented.repeated() else ''};"
        f" {logged_out} tabs logged out {[r['ended'] for r in results]}"
    )
    return results, presented, report


@pytest.fixture
def simplejwt(tmp_path: Path) -> Iterator[SimpleJWTServer]:
    with simplejwt_server(tmp_path, access_lifetime=ACCESS) as started:
        yield started


@pytest.fixture
def keyturn(tmp_path: Path) -> Iterator[Cluster]:
    """A token service with 5 s access tokens, logging every rotation and replay."""
    with token_service(tmp_path / "service", log_level="debug") as group:
        yield group


@pytest.mark.parametrize("run", range(RUNS))
def test_four_body_mode_tabs_against_simplejwt_never_present_a_refresh_token_twice(
    run: int, simplejwt: SimpleJWTServer, context: BrowserContext
) -> None:
    target = Target(
        simplejwt.url,
        "simplejwt",
        "/api/token/refresh/",
        "refresh",
        "/api/me/",
        simplejwt.username,
        simplejwt.password,
    )
    before = simplejwt.stats()
    results, presented, report = run_tabs(context, target)
    stats = {k: v - before[k] for k, v in simplejwt.stats().items()}
    report += f"; server refresh answers {stats}"
    print(f"\nSimpleJWT, body mode, run {run + 1}/{RUNS}: {report}")

    assert [r["ended"] for r in results] == [[]] * TABS, report  # no tab logged out
    assert presented.repeated() == 0, report
    assert stats["refresh_401"] == 0, report
    assert stats["refresh_other"] == 0, report
    assert stats["refresh_200"] == len(presented.tokens) >= SECONDS / ACCESS - 1, report
    for r in results:
        assert r["errors"] == {}, report
        assert r["statuses"] == {"200": r["calls"]}, report


@pytest.mark.parametrize("run", range(RUNS))
def test_four_body_mode_tabs_against_keyturn_never_replay(
    run: int, keyturn: Cluster, context: BrowserContext
) -> None:
    target = Target(
        keyturn.server.url,
        "keyturn",
        "/auth/refresh",
        "refresh_token",
        "/auth/me",
        keyturn.username,
        keyturn.password,
    )
    log = ServerLog(keyturn)
    results, presented, report = run_tabs(context, target)
    rotated = log.events("session.rotated")
    replayed = log.events("session.replayed")
    report += f"; server: {len(rotated)} rotations, {len(replayed)} replays"
    print(f"\nKeyturn, body mode, run {run + 1}/{RUNS}: {report}")

    assert replayed == [], report
    assert log.events("session.reuse_detected") == [], report
    assert presented.repeated() == 0, report
    assert len(rotated) == len(presented.tokens) >= SECONDS / ACCESS - 1, report
    assert [r["ended"] for r in results] == [[]] * TABS, report
    for r in results:
        assert r["errors"] == {}, report
        assert r["statuses"] == {"200": r["calls"]}, report
