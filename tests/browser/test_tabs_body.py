"""Issue 20, acceptance 1: four tabs in body mode never present a refresh token twice, against SimpleJWT
(no grace period: a token presented twice is refused, blacklisted) and against Keyturn (where it would be a
replay). Issue 14, acceptance 2 (its browser half): the same SimpleJWT-shaped page and assertions pass
against Keyturn's drop-in for SimpleJWT (``keyturn.django`` serving SimpleJWT's routes, in the example
project under gunicorn), with one rotation per refresh token presented and at most one per expiry, as the
server counts them (gunicorn's access log and the sessions' generations in Keyturn's store).

Four pages of one browser profile (one ``localStorage``, one BroadcastChannel, one set of Web Locks) hold one
body-mode session: the pair lives in ``localStorage``, and each page calls the API through
``session.fetch`` every 200 ms for a minute while access tokens live 5 s. Chromium gives each page its own
copy of ``localStorage``, updated a moment after another page writes it, so the tab that takes the refresh
lock right after another tab refreshed may still read the old pair: the client must learn from the lock
manager that a newer generation exists and wait for it rather than present the rotated token.

At the end the sessions are closed and any refresh under way finishes before the pages close: a page
closed while its refresh is in flight loses the answer, and the next tab presents the same token again (a
lost answer: at SimpleJWT either a second 200, if the first copy is still being answered, or a refusal
that ends the session). A token presented twice is reported with the pages, times (from the first
refresh), outcomes and how it stood to its earlier copy (a retry after a failure, concurrent, or after).

The page is served by Playwright on the server's origin (``/tabs-test/``, with the bundle beside it) so that
the same harness runs against every server; the bundle is ``clients/js/dist/keyturn.js``, or the file named
by ``KEYTURN_JS_BUNDLE``. ``KEYTURN_TABS_RUNS`` (default 1) repeats each test, ``KEYTURN_TABS_SECONDS``
(default 60) sets how long the tabs call. Tokens are compared, never shown: messages carry counts only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Request, Response, Route

from ..django._project import ExampleProject
from ..e2e._server import Cluster
from ..e2e._simplejwt import simplejwt_server
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
SHORTEST_PERIOD = (ACCESS - 1) * (1 - 1.1 / 3)
"""The shortest period the tabs may refresh at, one refresh per access token: ``exp`` and ``iat`` are whole
seconds (a token may live only ``ACCESS - 1`` s by them) and the margin, a third of the lifetime, gets up to
10 % jitter. More rotations than ``elapsed / SHORTEST_PERIOD + 1`` would be more than one per expiry."""
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

# No refresh under way or waiting in any page: the refresh lock is neither held nor asked for.
_LOCK_FREE = """() => navigator.locks.query().then(
  ({ held = [], pending = [] }) => ![...held, ...pending].some((lock) => lock.name == "keyturn"))"""

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
    when (monotonic) and how it went: the status, or the failure Chromium reported, and when."""

    tokens: list[str] = field(default_factory=list, repr=False)
    refresh_path: str = ""
    refresh_field: str = ""
    sent: list[tuple[int, float, Request]] = field(default_factory=list, repr=False)
    outcomes: dict[int, tuple[float, str]] = field(default_factory=dict)
    """By ``id`` of the request: when (monotonic) it settled, and its status or its failure."""
    closing: float = float("inf")
    """When (monotonic) the test began to close the pages."""

    def recorder(self, page: int) -> Callable[[Request], None]:
        def record(request: Request) -> None:
            if request.method != "POST" or urlsplit(request.url).path != self.refresh_path:
                return
            body = json.loads(request.post_data or "{}")
            self.tokens.append(str(body.get(self.refresh_field)))
            self.sent.append((page, time.monotonic(), request))

        return record

    def answered(self, response: Response) -> None:
        self.outcomes[id(response.request)] = (time.monotonic(), str(response.status))

    def failed(self, request: Request) -> None:
        self.outcomes[id(request)] = (time.monotonic(), f"failed: {request.failure}")

    def repeated(self) -> int:
        """How many presentations were of a token presented before."""
        return sum(n - 1 for n in Counter(self.tokens).values())

    def repeats(self) -> list[str]:
        """For each presentation of a token presented more than once: the page, when it was sent and
        settled (s from the first refresh), how, and how it stood to the token's earlier presentations: a
        ``retry`` (the same page, after its copy failed), ``concurrent`` (a copy still unanswered when it
        went: the lock did not keep them apart) or ``after`` (every copy answered before it went)."""
        counts = Counter(self.tokens)
        start = self.sent[0][1] if self.sent else 0.0
        found = []
        for index, (token, (page, at, request)) in enumerate(zip(self.tokens, self.sent, strict=True)):
            if counts[token] < 2:
                continue
            settled, outcome = self.outcomes.get(id(request), (float("nan"), "no answer"))
            earlier = [
                (p, self.outcomes.get(id(r), (float("inf"), "no answer")))
                for t, (p, _, r) in zip(self.tokens[:index], self.sent[:index], strict=True)
                if t == token
            ]
            how = "first"
            if any(end > at for _, (end, _) in earlier):
                how = "concurrent"
            elif any(p == page and what.startswith("failed") for p, (_, what) in earlier):
                how = "retry"
            elif earlier:
                how = "after"
            found.append(f"page {page} {at - start:.3f}-{settled - start:.3f} s {outcome} {how}")
        if found and self.closing < float("inf"):
            found.append(f"pages closed from {self.closing - start:.3f} s")
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


def run_tabs(context: BrowserContext, target: Target) -> tuple[list[dict[str, Any]], Presented, float, str]:
    """Signs in in the first tab, has every tab call the API for ``SECONDS``; returns each tab's results,
    the refresh tokens presented, the seconds the tabs called, and a one-line report (with the machine's
    load average: a loaded machine is where the tabs' races show)."""
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
    # The sessions are closed (no timer, so no new refresh) and the refresh under way, if any, finishes
    # before the pages close: a page closed with its refresh in flight takes the answer with it, and the
    # next tab presents the same token again (a lost answer, which no client can avoid: at Keyturn a
    # replay, at SimpleJWT a refusal, or a second 200 if the first copy is still being answered).
    for page in pages:
        page.evaluate("() => window.session.close()")
    deadline = time.monotonic() + 60
    while not pages[0].evaluate(_LOCK_FREE):  # a promise: wait_for_function would not wait for it
        assert time.monotonic() < deadline, "a page's refresh never finished"
        pages[0].wait_for_timeout(100)
    # Closed, the pages refresh no more, and every request they sent has been heard (Playwright hands its
    # events over only during a call): the server's counts, read next, match the presented tokens.
    presented.closing = time.monotonic()
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
        f" {logged_out} tabs logged out {[r['ended'] for r in results]};"
        f" load average {Path('/proc/loadavg').read_text().split()[:3]}"
    )
    return results, presented, elapsed, report


@dataclass(frozen=True)
class SimpleJWTShaped:
    """A server with SimpleJWT's paths and bodies: how it answered the refresh calls it has seen
    (``refresh_200``, ``refresh_401``, ``refresh_other``) and how many times its sessions rotated, both as
    the server counts them."""

    name: str
    url: str
    username: str
    password: str = field(repr=False)
    stats: Callable[[], dict[str, int]] = field(repr=False)
    rotations: Callable[[], int] = field(repr=False)


_ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>[^ ?"]+)[^"]* HTTP/[0-9.]+" (?P<status>\d{3})')


def gunicorn_refresh_answers(url: str, log: Path) -> dict[str, int]:
    """The refresh answers in gunicorn's access log, once a marker request shows that it is up to date."""
    marker = f"sync={uuid.uuid4().hex}"
    assert httpx.get(f"{url}/api/status/?{marker}", timeout=30).status_code == 200
    deadline = time.monotonic() + 30
    while marker not in (text := log.read_text(errors="replace")):
        assert time.monotonic() < deadline, "gunicorn's access log never showed the marker request"
        time.sleep(0.05)
    counts = {"refresh_200": 0, "refresh_401": 0, "refresh_other": 0}
    for line in text.splitlines():
        match = _ACCESS_LINE.search(line)
        if match and (match["method"], match["path"]) == ("POST", "/api/token/refresh/"):
            status = match["status"]
            counts[f"refresh_{status}" if status in ("200", "401") else "refresh_other"] += 1
    return counts


def stored_rotations(database: Path) -> int:
    """Rotations of every session in Keyturn's store: a session's generation counts them."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as db:
        return int(db.execute("SELECT coalesce(sum(gen), 0) FROM sessions").fetchone()[0])


@contextlib.contextmanager
def keyturn_django(tmp_path: Path) -> Iterator[SimpleJWTShaped]:
    """The example Django project on ``keyturn.django`` (SimpleJWT's routes served by Keyturn, issue 14),
    under gunicorn's sync workers on SQLite, with 5 s access tokens and every request in gunicorn's log."""
    database = tmp_path / "db.sqlite3"
    project = ExampleProject(tmp_path, f"sqlite:///{database}")
    project.manage("migrate")
    (user,) = project.add_users(1)
    extra = {
        "ACCESS_LIFETIME": str(ACCESS),
        "GUNICORN_CMD_ARGS": "--access-logfile -",
        "PYTHONUNBUFFERED": "1",
    }
    with project.serve("keyturn", extra=extra) as url:
        (log,) = (tmp_path / "logs").glob("keyturn-gunicorn-*.log")
        yield SimpleJWTShaped(
            "keyturn.django",
            url,
            user.username,
            user.password,
            lambda: gunicorn_refresh_answers(url, log),
            lambda: stored_rotations(database),
        )


@pytest.fixture(params=["simplejwt", "keyturn.django"])
def simplejwt(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SimpleJWTShaped]:
    """djangorestframework-simplejwt itself, or Keyturn's drop-in for it: the same page runs against both."""
    if request.param == "keyturn.django":
        with keyturn_django(tmp_path) as dropin:
            yield dropin
        return
    with simplejwt_server(tmp_path, access_lifetime=ACCESS) as started:

        def rotations() -> int:
            return started.stats()["refresh_200"]  # every refresh answered 200 rotated the token

        yield SimpleJWTShaped(
            "SimpleJWT", started.url, started.username, started.password, started.stats, rotations
        )


@pytest.fixture
def keyturn(tmp_path: Path) -> Iterator[Cluster]:
    """A token service with 5 s access tokens, logging every rotation and replay."""
    with token_service(tmp_path / "service", log_level="debug") as group:
        yield group


@pytest.mark.parametrize("run", range(RUNS))
def test_four_body_mode_tabs_against_simplejwt_never_present_a_refresh_token_twice(
    run: int, simplejwt: SimpleJWTShaped, context: BrowserContext
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
    before, rotated_before = simplejwt.stats(), simplejwt.rotations()
    results, presented, elapsed, report = run_tabs(context, target)
    stats = {k: v - before[k] for k, v in simplejwt.stats().items()}
    rotations = simplejwt.rotations() - rotated_before
    report += f"; server refresh answers {stats}, {rotations} rotations"
    print(f"\n{simplejwt.name}, body mode, run {run + 1}/{RUNS}: {report}")

    assert [r["ended"] for r in results] == [[]] * TABS, report  # no tab logged out
    assert presented.repeated() == 0, report
    assert stats["refresh_401"] == 0, report
    assert stats["refresh_other"] == 0, report
    assert stats["refresh_200"] == len(presented.tokens) >= SECONDS / ACCESS - 1, report
    # One rotation per refresh token presented, and at most one per expiry: the tabs share one chain.
    assert rotations == len(presented.tokens) <= elapsed / SHORTEST_PERIOD + 1, report
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
    results, presented, elapsed, report = run_tabs(context, target)
    rotated = log.events("session.rotated")
    replayed = log.events("session.replayed")
    report += f"; server: {len(rotated)} rotations, {len(replayed)} replays"
    print(f"\nKeyturn, body mode, run {run + 1}/{RUNS}: {report}")

    assert replayed == [], report
    assert log.events("session.reuse_detected") == [], report
    assert presented.repeated() == 0, report
    assert len(rotated) == len(presented.tokens) >= SECONDS / ACCESS - 1, report
    assert len(rotated) <= elapsed / SHORTEST_PERIOD + 1, report
    assert [r["ended"] for r in results] == [[]] * TABS, report
    for r in results:
        assert r["errors"] == {}, report
        assert r["statuses"] == {"200": r["calls"]}, report
