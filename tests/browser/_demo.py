"""The demo page at ``/demo/`` in real Chromium, and what the token service behind it saw.

A :class:`Tab` is one page of the demo: it records every answer the page received from the service (path,
status, and an error's code; a success's body, which holds tokens, is never read) and the session's events
as the page's own handlers heard them. :class:`ServerLog` reads the token
service's access log (``--access-log --log-level info``: one line a request, plus Keyturn's events) from a
mark on; :func:`session_row` reads a session's generation and state from the SQLite file. Nothing here
puts a token or a password into a message.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import BrowserContext, Page, Response
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Request as PageRequest

from ..e2e._server import Cluster, cluster
from ._sends import RECORDER

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEMO_BUNDLE = Path(__file__).parents[2] / "src" / "keyturn" / "server" / "demo" / "keyturn.js"

LIFETIME = 5
"""Seconds an access token lives in these tests' token services."""
MARGIN = min(300, LIFETIME / 3)
"""The client's refresh margin for that lifetime: ``min(refresh_margin, lifetime / 3)``."""
REFRESH_PERIOD = LIFETIME - MARGIN
"""Seconds between a page's refreshes, as issue 6 reckons it (``5 - 5/3``)."""
SHORTEST_PERIOD = (LIFETIME - 1) * (1 - 1.1 / 3)
"""The shortest period a page may refresh at: the service answers ``expires_in`` in whole seconds (so up
to one second under the lifetime) and the client adds up to 10 % jitter to its margin."""

STALLS = 2
"""Refreshes of a page's run that may come late, each because the machine stalled: the margin leaves a
page a second or two (``MARGIN``, less what ``expires_in`` rounds off; test_clock's gaps 0.7 s), which a
CI worker at load 9 can stall Chromium or the test for. A page that does not refresh ahead is late at
every refresh (10 in test_clock's 25 s, 24 in a minute here), one whose clock is off at most of them."""

SETTINGS = {"KEYTURN_ACCESS_TOKEN_LIFETIME": str(LIFETIME), "KEYTURN_LEEWAY": "0"}

DPOP_SETTINGS = {"KEYTURN_DPOP": "required", "KEYTURN_DPOP_BIND_ACCESS_TOKENS": "true"}
"""A service where every login and refresh needs a DPoP proof and access tokens are bound too (so the page's
API calls carry proofs): the settings of the scenarios run with ``dpop: true`` (``/demo/?dpop``)."""

LOG_DEADLINE = 30.0
"""How long a request's line may take to reach the log file (a slow, busy machine)."""

_REQUEST = re.compile(r'"(?P<method>[A-Z]+) (?P<path>[^ ?"]+)[^"]* HTTP/[0-9.]+" (?P<status>\d{3})')


@contextlib.contextmanager
def token_service(data_dir: Path, log_level: str = "info", **settings: str) -> Iterator[Cluster]:
    """A real ``keyturn serve`` (user ``alice``) with a 5 s access token, no leeway, every request logged
    (``log_level="debug"`` adds each rotation and replay); ``settings`` (``KEYTURN_*``) add to those."""
    with cluster(data_dir, 1, {**SETTINGS, **settings}, "--access-log", "--log-level", log_level) as group:
        yield group


# -- the token service's side ---------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One line of the access log."""

    at: float
    """Epoch seconds, as the server logged the answer."""
    method: str
    path: str
    status: int


class ServerLog:
    """The token service's log from a mark on: every request answered before this is made is left out."""

    def __init__(self, service: Cluster) -> None:
        self.server = service.server
        self.start = 0
        self.start = len(self._synced())

    def _lines(self) -> list[str]:
        return self.server.log.read_text(errors="replace").splitlines()

    def _synced(self) -> list[str]:
        """The log's lines once every request answered before this call is in it: a marker request is
        sent, and the lines read once it shows."""
        marker = f"/healthz?sync={uuid.uuid4().hex}"
        assert httpx.get(self.server.url + marker, timeout=30).status_code == 200
        deadline = time.monotonic() + LOG_DEADLINE
        while True:
            lines = self._lines()
            if any(marker in line for line in lines[self.start :]):
                return lines
            assert time.monotonic() < deadline, "the server's access log never showed the marker request"
            time.sleep(0.05)

    def entries(self) -> list[dict[str, Any]]:
        found = []
        for line in self._synced()[self.start :]:
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    found.append(entry)
        return found

    def requests(self, method: str | None = None, path: str | None = None) -> list[Request]:
        found = []
        for entry in self.entries():
            match = (
                _REQUEST.search(str(entry.get("message", "")))
                if entry.get("logger") == "uvicorn.access"
                else None
            )
            if match is None:
                continue
            request = Request(
                datetime.fromisoformat(entry["time"]).timestamp(),
                match["method"],
                match["path"],
                int(match["status"]),
            )
            if request.path == "/healthz":
                continue
            if (method is None or request.method == method) and (path is None or request.path == path):
                found.append(request)
        return found

    def refreshes(self) -> list[Request]:
        return self.requests("POST", "/auth/refresh")

    def events(self, name: str, sid: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.entries() if e.get("event") == name and (sid is None or e.get("sid") == sid)]


@dataclass(frozen=True)
class SessionRow:
    gen: int
    state: str
    reason: str | None
    jkt: str | None
    """The thumbprint of the DPoP key the session is bound to, if any."""


def session_row(service: Cluster, sid: str) -> SessionRow:
    """The session's row in the SQLite store: its generation counts its rotations."""
    uri = f"file:{service.data_dir / 'keyturn.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
        row = db.execute(
            "SELECT gen, state, revoked_reason, jkt FROM sessions WHERE sid = ?", (sid,)
        ).fetchone()
    assert row is not None, "the session is not in the store"
    return SessionRow(int(row[0]), str(row[1]), row[2], row[3])


# -- the page's side ------------------------------------------------------------------------------

# Installed once the page has loaded: the session's events as the page's handlers hear them.
_WATCH = """() => {
  const d = window.keyturnDemo;
  const seen = (window.__seen = { ended: [], states: [d.session.state], refreshed: [] });
  d.session.on("session_ended", (reason) => seen.ended.push(reason));
  d.session.on("state", (state) => seen.states.push(state));
  d.session.on("refreshed", (e) => seen.refreshed.push(e.generation));
}"""


@dataclass(frozen=True)
class Answer:
    """An answer the page received from the token service: when (monotonic, as the test heard of it), to
    what, which status, and for an error its code."""

    at: float
    method: str
    path: str
    status: int
    error: str | None = None


@dataclass
class Tab:
    """One page of the demo, with what it has seen."""

    page: Page
    service: Cluster
    dpop: bool = False
    """The page's session is made with ``dpop: true`` (``/demo/?dpop``)."""
    answers: list[Answer] = field(default_factory=list)
    proofs: list[tuple[str, float, int]] = field(default_factory=list)
    """``(path, when the page sent it, iat)`` of every DPoP proof the page sent (wall clock, which the page
    and the service share on this machine), never the proof itself."""
    sid: str = ""

    def _sent(self, request: PageRequest) -> None:
        proof = request.headers.get("dpop")
        if proof is None:
            return
        sent = time.time()  # the test hears of a request after the page sent it
        with contextlib.suppress(IndexError, ValueError, KeyError, TypeError):
            payload = proof.split(".")[1]
            iat = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["iat"]
            self.proofs.append((urlsplit(request.url).path, sent, int(iat)))

    def proofs_ahead(self) -> list[tuple[str, float]]:
        """``(path, seconds)`` of each proof whose ``iat`` was ahead of the clock when the page sent it."""
        return [(path, round(iat - sent, 3)) for path, sent, iat in self.proofs if iat > sent]

    def _answered(self, response: Response) -> None:
        path = urlsplit(response.url).path
        if not path.startswith("/auth/"):
            return
        at, error = time.monotonic(), None
        if response.status >= 400:
            with contextlib.suppress(PlaywrightError, ValueError, AttributeError):
                error = str(response.json().get("error"))
        self.answers.append(Answer(at, response.request.method, path, response.status, error))

    def open(self) -> Tab:
        self.page.add_init_script(RECORDER)  # before the demo loads: its fetch is the wrapped one
        self.page.on("response", self._answered)
        self.page.on("request", self._sent)
        self.page.goto(self.service.server.url + ("/demo/?dpop" if self.dpop else "/demo/"))
        self.page.wait_for_function("() => window.keyturnDemo !== undefined")
        self.page.evaluate("() => window.keyturnDemo.session.ready")
        self.page.evaluate(_WATCH)
        return self

    def sign_in(self, password: str | None = None) -> None:
        """Sign in with the form as ``alice`` (a wrong ``password`` if given: then the form stays)."""
        page = self.page
        page.locator("#login").wait_for(state="visible")
        page.fill("input[name=username]", self.service.username)
        page.fill("input[name=password]", password or self.service.password)
        with page.expect_response(_login_answer) as login:
            page.click("#login-form button[type=submit]")
        if password is None:
            assert login.value.status == 200, f"login answered {login.value.status}"
            self.sid = str(login.value.json()["session_id"])
            page.locator("#live").wait_for(state="visible")

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    @property
    def state(self) -> str:
        return str(self.js("() => window.keyturnDemo.session.state"))

    def counts(self) -> dict[str, int]:
        """The page's API calls (``GET /auth/me`` through ``session.fetch``): ``ok`` and ``failed``."""
        return dict(self.js("() => window.keyturnDemo.counts()"))

    def seen(self) -> dict[str, list[Any]]:
        """``ended`` (reasons), ``states`` and ``refreshed`` (generations) as the page heard them."""
        return dict(self.js("() => window.__seen"))

    def generation(self) -> int:
        return int(self.js("() => window.keyturnDemo.session.generation"))

    def auto(self, on: bool) -> None:
        """The demo's "Call every 200 ms" button."""
        if (self.page.get_attribute("#auto", "aria-pressed") == "true") != on:
            self.page.click("#auto")

    def wait_for(self, predicate: str, timeout: float, arg: Any = None) -> None:
        """Poll ``predicate`` (a function: the page's policy forbids evaluating strings) every 100 ms until
        it returns a truthy value, for up to ``timeout`` seconds."""
        self.page.wait_for_function(predicate, arg=arg, timeout=timeout * 1000, polling=100)

    def wait_refreshed(self, timeout: float = 15) -> None:
        """Until this tab has installed tokens newer than now (its own refresh or another tab's)."""
        self.wait_for("(gen) => window.keyturnDemo.session.generation > gen", timeout, self.generation())

    def wait_ended(self, timeout: float = 15) -> None:
        self.wait_for("() => window.__seen.ended.length > 0", timeout)

    def statuses(self, method: str, path: str, since: float = 0.0) -> list[int]:
        return [a.status for a in self.answers if a.method == method and a.path == path and a.at >= since]

    def errors(self, since: float = 0.0) -> list[tuple[str, int, str | None]]:
        """``(path, status, code)`` of every error answer since ``since`` (monotonic)."""
        return [(a.path, a.status, a.error) for a in self.answers if a.status >= 400 and a.at >= since]

    def shows_login(self) -> tuple[bool, bool, str | None]:
        """Whether ``#login`` is visible, ``#live`` hidden, and ``#ended``'s ``data-reason``."""
        page = self.page
        return (
            page.locator("#login").is_visible(),
            page.locator("#live").is_hidden(),
            page.get_attribute("#ended", "data-reason"),
        )


def _login_answer(response: Response) -> bool:
    """The answer to the login, past a ``use_dpop_nonce`` (400 with a ``DPoP-Nonce``) the page answers by
    sending its proof once more with the nonce."""
    asked_nonce = response.status == 400 and "dpop-nonce" in response.headers
    return urlsplit(response.url).path == "/auth/login" and not asked_nonce


def open_tab(context: BrowserContext, service: Cluster, *, dpop: bool = False) -> Tab:
    return Tab(context.new_page(), service, dpop).open()


def refresh_cookie(context: BrowserContext) -> Mapping[str, Any]:
    """The ``keyturn_refresh`` cookie of ``context`` (the page's JavaScript cannot read it)."""
    cookies = [c for c in context.cookies() if c["name"] == "keyturn_refresh"]
    assert len(cookies) == 1, f"{len(cookies)} refresh cookies in the browser"
    return dict(cookies[0])


def gaps(times: list[float]) -> list[float]:
    """The time between each two successive moments of ``times``."""
    return [b - a for a, b in itertools.pairwise(times)]
