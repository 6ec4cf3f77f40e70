"""Issue 5 and 6: the browser client keeps a body-mode session alive against djangorestframework-simplejwt.

A real Django + SimpleJWT server (``tests/e2e/apps/simplejwt_server.py``) rotates refresh tokens and
blacklists the used ones, with no grace period; its access tokens live 3 s (its timestamps are whole
seconds, so 1 s would be unreliable). It also serves the page ``/client/`` and the built bundle
(``clients/js/dist/keyturn.js``), so that the page and the API share an origin (no CORS). The page holds
``createSession({mode: "body", endpoints: SIMPLEJWT, storage: localStorage, refreshMargin: 300})``: the
pair lives in ``localStorage``, login is ``POST /api/token/`` and refresh ``POST /api/token/refresh/``.

The page calls ``session.fetch("/api/me/")`` every 200 ms over about four access lifetimes and every call
succeeds, with about one refresh per ``3 - min(300, 3/3)`` s and none refused. Then an attacker who copied
the refresh token from ``localStorage`` refreshes with it first: SimpleJWT blacklists it, the page's next
refresh is refused with ``token_not_valid``, and the session ends once, with no refresh loop after it.

Tokens are compared as they are, but never shown: messages carry statuses, codes and counts only.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Request, Response
from playwright.sync_api import Error as PlaywrightError

from ..e2e._http import jwt_parts
from ..e2e._simplejwt import SimpleJWTServer, simplejwt_server

BUNDLE = Path(__file__).resolve().parents[2] / "clients" / "js" / "dist" / "keyturn.js"
ACCESS = 3
"""Seconds an access token lives."""
LIFETIMES = 4
RUN = ACCESS * LIFETIMES + 1.0
"""Seconds of calls: about four access lifetimes."""
INTERVAL = 200
"""Milliseconds between the page's calls."""
SHORTEST_PERIOD = (ACCESS - 1) * (1 - 1.1 / 3)
"""The shortest period the page may refresh at: ``exp`` and ``iat`` are whole seconds (a token may live
only 2 s by them) and the margin, a third of the lifetime, gets up to 10 % jitter."""
STORAGE_KEY = "keyturn"
_ENDED = "SessionEndedError: token_not_valid"
"""How the page counts a call rejected because the session ended."""
TOKEN_PATHS = ("/api/token/", "/api/token/refresh/")

_SETTLED = """() => {
  const r = window.results;
  const sum = (counts) => Object.values(counts).reduce((a, b) => a + b, 0);
  return sum(r.statuses) + sum(r.errors) == r.calls;
}"""
_STORED = f"() => JSON.parse(localStorage.getItem({json.dumps(STORAGE_KEY)}) ?? 'null')"


@dataclass(frozen=True)
class Answer:
    """An answer the page received: when (monotonic, as the test heard of it), to what, which status,
    and for an error its SimpleJWT code."""

    at: float
    method: str
    path: str
    status: int
    code: str | None = None


@dataclass
class Traffic:
    """Every request the page sent and every answer it received; the refresh tokens the server issued
    to it (kept to look for them, never shown)."""

    sent: list[tuple[float, str]] = field(default_factory=list)
    """When (monotonic, as the test heard of it) and to which URL each request went."""
    answers: list[Answer] = field(default_factory=list)
    issued: set[str] = field(default_factory=set, repr=False)

    def attach(self, page: Page) -> None:
        page.on("request", self._sent)
        page.on("response", self._answered)

    def _sent(self, request: Request) -> None:
        self.sent.append((time.monotonic(), request.url))

    def _answered(self, response: Response) -> None:
        path = urlsplit(response.url).path
        if not path.startswith("/api/"):
            return
        at, code = time.monotonic(), None
        with contextlib.suppress(PlaywrightError, ValueError, AttributeError, TypeError):
            if response.status >= 400:
                code = str(response.json().get("code"))
            elif path in TOKEN_PATHS:
                self.issued.add(str(response.json()["refresh"]))
        self.answers.append(Answer(at, response.request.method, path, response.status, code))

    def statuses(self, method: str, path: str, since: float = 0.0) -> list[tuple[int, str | None]]:
        return [
            (a.status, a.code) for a in self.answers if (a.method, a.path) == (method, path) and a.at >= since
        ]


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before[key] for key in after}


def results(page: Page) -> dict[str, Any]:
    """What the page's calls got: ``calls``, ``statuses`` and ``errors`` (counts), ``ended`` (reasons) and
    ``refreshed`` (the count of ``refreshed`` events, the login's included)."""
    return dict(page.evaluate("() => window.results"))


def wait_for(page: Page, predicate: str, timeout: float, arg: Any = None) -> None:
    page.wait_for_function(predicate, arg=arg, timeout=timeout * 1000, polling=100)


def stop_calls(page: Page) -> None:
    page.evaluate("() => window.calls.stop()")
    wait_for(page, _SETTLED, 30)  # calls still in flight settle


def token_type(token: str) -> str:
    return str(jwt_parts(token)[1].get("token_type"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SimpleJWTServer]:
    if not BUNDLE.is_file():
        pytest.fail(f"{BUNDLE} is missing: `cd clients/js && npm run build` builds it")
    with simplejwt_server(tmp_path, access_lifetime=ACCESS, client_bundle=BUNDLE) as started:
        yield started


def test_a_body_mode_session_lives_across_rotations_and_ends_once_when_its_refresh_token_is_stolen(
    server: SimpleJWTServer, context: BrowserContext
) -> None:
    page = context.new_page()
    traffic = Traffic()
    traffic.attach(page)
    page.goto(server.url + "/client/")
    wait_for(page, "() => window.clientReady === true", 30)
    page.evaluate("() => window.session.ready")
    assert page.evaluate("() => window.session.state") == "signed_out"

    # -- four access lifetimes of calls every 200 ms -------------------------------------------------
    before = server.stats()
    page.evaluate(
        "([user, secret]) => window.session.login(user, secret)", [server.username, server.password]
    )
    started = time.monotonic()
    page.evaluate("(ms) => window.calls.start(ms)", INTERVAL)
    page.wait_for_timeout(RUN * 1000)
    stop_calls(page)
    # Counted right after a refresh, when none is in flight (the next is about 2 s away): the server's counts
    # and the answers the page heard (Playwright hands its events over only during a call) then agree.
    wait_for(page, "(n) => window.results.refreshed > n", 15, results(page)["refreshed"])
    page.wait_for_timeout(200)
    elapsed = time.monotonic() - started

    got = results(page)
    counts = delta(before, server.stats())
    refreshes = counts["refresh_200"]
    expiries = elapsed / ACCESS
    me = Counter(traffic.statuses("GET", "/api/me/"))
    report = (
        f"{got['calls']} calls in {elapsed:.1f} s: {got['statuses']}, errors {got['errors']};"
        f" server refreshes {counts}, {expiries:.1f} expiries crossed; /api/me/ answers {dict(me)}"
    )
    print(f"\nSimpleJWT in the browser: {report}")

    # Every call answered 200 (a resend after a refused, just-expired token included), none threw.
    assert got["errors"] == {}, report
    assert got["statuses"] == {"200": got["calls"]}, report
    assert got["calls"] >= RUN * 1000 / INTERVAL / 2, report  # the interval ran (half its calls at least)
    # About one refresh per access token, every one answered 200: each token was replaced before or at
    # its expiry (the session lived), and no more often than the margin (a third of the lifetime) makes it.
    assert counts["refresh_401"] == 0, report
    assert counts["refresh_other"] == 0, report
    assert expiries - 1 <= refreshes <= elapsed / SHORTEST_PERIOD + 1, report
    assert traffic.statuses("POST", "/api/token/refresh/") == [(200, None)] * refreshes, report
    assert got["refreshed"] == refreshes + 1, report  # the login's tokens, then one event a refresh
    # Any 401 on /api/me/ was SimpleJWT's token_not_valid for an access token at its very end, each one
    # followed by a refresh and one resend (so never more of them than refreshes).
    assert set(me) <= {(200, None), (401, "token_not_valid")}, report
    assert me[(401, "token_not_valid")] <= refreshes, report
    assert page.evaluate("() => window.session.state") == "active"
    assert got["ended"] == []

    # Body mode: the pair is in localStorage, the newest refresh token the server issued to the page.
    stored = page.evaluate(_STORED)
    assert isinstance(stored, dict), "nothing stored under the session's key"
    assert {"at", "rt"} <= set(stored), f"stored keys: {sorted(stored)}"
    assert (token_type(stored["at"]), token_type(stored["rt"])) == ("access", "refresh")
    assert stored["rt"] in traffic.issued, "the stored refresh token is not one the server issued"
    assert len(traffic.issued) == refreshes + 1

    # -- a stolen refresh token ---------------------------------------------------------------------
    # Right after a refresh of the page (its next one is about 2 s away), the attacker copies the refresh
    # token from localStorage and refreshes with it first: SimpleJWT rotates it and blacklists it.
    # A test stalled for the 2 s to the page's next refresh (a CI worker at load 9) copies a token the page
    # then rotates first, and SimpleJWT refuses the attacker: the scene did not happen; it is played again
    # after the page's next refresh.
    for _ in range(3):
        wait_for(page, "(n) => window.results.refreshed > n", 15, results(page)["refreshed"])
        stolen = page.evaluate(_STORED)["rt"]
        attacker = httpx.post(server.url + "/api/token/refresh/", json={"refresh": stolen}, timeout=30)
        if attacker.status_code != 401 or page.evaluate(_STORED)["rt"] == stolen:
            break  # the attacker's answer, unless the page had rotated the copy already
    assert attacker.status_code == 200, f"the attacker's refresh: status {attacker.status_code}"
    assert set(attacker.json()) == {"access", "refresh"}

    baseline = server.stats()
    since = time.monotonic()
    calls_before = results(page)
    page.evaluate("(ms) => window.calls.start(ms)", INTERVAL)
    wait_for(page, "() => window.results.ended.length > 0", 30)
    ended_after = time.monotonic() - since
    page.wait_for_timeout(3000)  # calls go on: time for a second end or another refresh, were there one
    # Half the interval's calls in those 3 s at least, each rejected (waited for: a stalled browser makes
    # fewer in the same 3 s); a page whose calls stop or go out instead fails below or here.
    rejected_calls = "(n) => (window.results.errors['SessionEndedError: token_not_valid'] ?? 0) >= n"
    wait_for(page, rejected_calls, 30, calls_before["errors"].get(_ENDED, 0) + 3000 / INTERVAL / 2)
    stop_calls(page)
    # And one more call, after all that: it rejects with the session-ended error, sending nothing.
    rejected = page.evaluate(
        """() => window.session.fetch("/api/me/").then(
          (response) => ["resolved", response.status],
          (error) => [error.name, error.reason ?? null])"""
    )

    after = results(page)
    counts = delta(baseline, server.stats())
    statuses = {k: v - calls_before["statuses"].get(k, 0) for k, v in after["statuses"].items()}
    statuses = {k: v for k, v in statuses.items() if v}
    errors = {k: v - calls_before["errors"].get(k, 0) for k, v in after["errors"].items()}
    report = (
        f"ended after {ended_after:.1f} s; {after['calls'] - calls_before['calls']} calls: {statuses},"
        f" errors {errors}; server refreshes {counts}; page's refresh answers"
        f" {traffic.statuses('POST', '/api/token/refresh/', since)}"
    )
    print(f"stolen refresh token: {report}")

    assert after["ended"] == ["token_not_valid"], report  # session_ended, exactly once
    assert page.evaluate("() => window.session.state") == "ended"
    assert rejected == ["SessionEndedError", "token_not_valid"], report
    # The page's one refresh with the blacklisted token was refused, and nothing was refreshed after it:
    # no loop, no retry.
    assert counts == {"refresh_200": 0, "refresh_401": 1, "refresh_other": 0}, report
    assert traffic.statuses("POST", "/api/token/refresh/", since) == [(401, "token_not_valid")], report
    # Calls succeeded (the access token was still good) until the end, then rejected with the
    # session-ended error without reaching the server.
    assert set(statuses) <= {"200"}, report
    assert set(errors) == {_ENDED}, report
    assert errors[_ENDED] >= 3000 / INTERVAL / 2, report
    # Nothing went out once the refusal was in (a second of slack for calls already on their way).
    end = max(a.at for a in traffic.answers if a.path == "/api/token/refresh/")
    late = [urlsplit(url).path for at, url in traffic.sent if at > end + 1.0]
    assert late == [], f"requests after the session ended: {late}"
    # The session is over in storage too: an end marker, no token left.
    stored = page.evaluate(_STORED)
    assert isinstance(stored, dict), "nothing stored under the session's key"
    assert stored.get("end") == "token_not_valid"
    assert not {"at", "rt"} & set(stored), f"stored keys: {sorted(stored)}"

    # The refresh token only ever travelled in request bodies: no URL carried it, or any token at all.
    assert len(traffic.issued) >= 2
    in_urls = [
        urlsplit(url).path for _, url in traffic.sent if "eyJ" in url or any(t in url for t in traffic.issued)
    ]
    assert in_urls == [], f"tokens in the URLs of requests to {in_urls}"
