"""Issue 17, acceptance 2 in Chromium: a refresh token copied out of a DPoP-bound page is useless elsewhere.

A page of the service's origin holds a session made with ``dpop: true`` (its key non-extractable, in
IndexedDB), in cookie mode (the refresh token in the HttpOnly cookie, read here from the browser profile's
cookie jar) or in body mode (the pair in ``localStorage``, read from the page). Whoever copied the token
presents it from Python, with no proof or with proofs by a key of its own, the newest copy and one kept from
before the page refreshed: every attempt is ``401 refresh_token_bound``, and the page's session goes on
refreshing, neither rotated nor revoked by the attempts. The service binds sessions started with a proof
(``KEYTURN_DPOP=optional``, the default), so the refusal is the binding's, not a rule against bare calls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, Literal

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Route

from keyturn.client.dpop import DpopKey

from ..e2e._server import Cluster
from ._demo import DEMO_BUNDLE, ServerLog, refresh_cookie, session_row, token_service

Mode = Literal["cookie", "body"]
ROUNDS = 3
PAGE_PATH = "/dpop-theft/"
NAME = "theft"
"""The session's name: its storage key, and its key's name in IndexedDB."""

PAGE = f"""<!doctype html>
<meta charset="utf-8">
<title>Keyturn client, DPoP</title>
<script type="module">
import {{ createSession }} from "./dpop.js";
const mode = new URLSearchParams(location.search).get("mode");
const session = (window.session = createSession({{ mode, dpop: true, name: "{NAME}" }}));
window.seen = {{ ended: [], refreshed: 0 }};
session.on("session_ended", (reason) => window.seen.ended.push(reason));
session.on("refreshed", () => (window.seen.refreshed += 1));
window.ready = true;
</script>
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with token_service(tmp_path_factory.mktemp("service")) as group:
        yield group


def open_page(context: BrowserContext, service: Cluster, mode: Mode) -> Page:
    """The page above on the service's origin, with the bundles ``make js`` put beside the demo."""
    files = {name: (DEMO_BUNDLE.parent / name).read_bytes() for name in ("keyturn.js", "dpop.js")}

    def serve(route: Route) -> None:
        name = route.request.url.split("?")[0].rsplit("/", 1)[-1]
        if name in files:
            route.fulfill(status=200, content_type="text/javascript", body=files[name])
        else:
            route.fulfill(status=200, content_type="text/html; charset=utf-8", body=PAGE)

    origin = service.server.url
    context.route(origin + PAGE_PATH + "**", serve)
    page = context.new_page()
    page.goto(f"{origin}{PAGE_PATH}?mode={mode}")
    page.wait_for_function("() => window.ready === true")
    page.evaluate("() => window.session.ready")
    return page


def copied(context: BrowserContext, page: Page, mode: Mode) -> str:
    """The refresh token as a thief finds it: in the cookie jar, or in the page's storage."""
    if mode == "cookie":
        return str(refresh_cookie(context)["value"])
    stored = page.evaluate("(name) => localStorage.getItem(name)", NAME)
    return str(json.loads(stored)["rt"])


def presented(service: Cluster, mode: Mode, token: str, key: DpopKey | None) -> tuple[int, Any]:
    """A refresh from outside the browser with the copied token, as a cookie or in the body, with a proof
    by ``key`` (the thief's own) or none. The status and the error code."""
    url = service.server.url + "/auth/refresh"
    headers = {} if key is None else {"DPoP": key.proof("POST", url, now=time.time())}
    if mode == "cookie":
        headers |= {"Cookie": f"keyturn_refresh={token}", "X-Keyturn-CSRF": "1"}
        answer = httpx.post(url, json={}, headers=headers, timeout=30)
    else:
        answer = httpx.post(url, json={"refresh_token": token}, headers=headers, timeout=30)
    return answer.status_code, answer.json().get("error")


def wait_refreshed(page: Page, count: int) -> None:
    """Until the page has installed new tokens ``count`` times since it loaded."""
    page.wait_for_function("(n) => window.seen.refreshed >= n", arg=count, timeout=30_000, polling=100)


@pytest.mark.parametrize("mode", ["cookie", "body"])
def test_a_copied_refresh_token_is_refused_from_elsewhere_and_the_page_keeps_refreshing(
    service: Cluster, context: BrowserContext, mode: Mode
) -> None:
    page = open_page(context, service, mode)
    sid = page.evaluate(
        "([u, p, name]) => window.session.login(u, p).then(() => JSON.parse(localStorage.getItem(name)).sid)",
        [service.username, service.password, NAME],
    )
    wait_refreshed(page, 2)  # the login, and a refresh with a proof by the page's key
    bound = session_row(service, sid)
    assert bound.jkt is not None
    assert bound.state == "active"
    log = ServerLog(service)
    first = copied(context, page, mode)
    thief = DpopKey.generate()
    attempts = []
    for round_ in range(ROUNDS):
        newest = copied(context, page, mode)
        for token in dict.fromkeys([newest, first]):
            for key in (None, thief):
                attempts.append(presented(service, mode, token, key))
        wait_refreshed(page, 3 + round_)  # the page goes on, with its own key

    row = session_row(service, sid)
    seen = page.evaluate("() => window.seen")
    refreshes = [r.status for r in log.refreshes()]
    report = f"attempts {attempts}; the page's session: {row}, {seen}, refresh statuses {refreshes}"
    assert len(attempts) >= 2 * ROUNDS, report
    assert set(attempts) == {(401, "refresh_token_bound")}, report
    assert seen["ended"] == [], report
    assert row.state == "active", report
    assert row.jkt == bound.jkt, report
    assert row.gen >= bound.gen + ROUNDS, report  # rotated by the page alone
    assert refreshes.count(200) >= ROUNDS, report
    assert set(refreshes) == {200, 401}, report  # the thief's 401s and the page's successes
    assert log.events("session.reuse_detected") == [], report
    assert page.evaluate("() => window.session.state") == "active"
