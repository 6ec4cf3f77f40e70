"""Issue 17, acceptance 1: oauth4webapi, in Chromium, performs DPoP-bound refreshes against ``keyturn serve``.

oauth4webapi (panva's OAuth 2.0 client for browsers, an npm devDependency of ``clients/js``) discovers the
token endpoint from ``/.well-known/oauth-authorization-server`` and signs its own DPoP proofs with a
non-extractable key of its own making (``generateKeyPair``, ``DPoP``): none of Keyturn's client code is on
the page. Keyturn issues no authorization codes, so the session starts at ``POST /auth/login`` with a proof
made by oauth4webapi's DPoP handle; from there oauth4webapi carries it on with ``refreshTokenGrantRequest``
at ``/oauth/token``, and calls ``/auth/me`` with its bound access tokens (``protectedResourceRequest``).

The service requires DPoP and binds access tokens too; its ``ISSUER`` is its own URL, as RFC 8414 and
oauth4webapi's discovery check want. The refresh token, copied out of the page and presented from Python
without a proof or with a proof by another key, is refused, and oauth4webapi's session keeps refreshing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Route

from keyturn.client.dpop import DpopKey

from ..e2e._server import Cluster, cluster, free_port
from ._demo import DPOP_SETTINGS, SETTINGS, ServerLog, session_row

LIBRARY = Path(__file__).resolve().parents[2] / "clients" / "js" / "node_modules" / "oauth4webapi" / "build"
PAGE_PATH = "/oauth4webapi-test/"
REFRESHES = 3

# The page: oauth4webapi, and functions the test calls. The refresh token stays in the page's memory.
PAGE = """<!doctype html>
<meta charset="utf-8">
<title>oauth4webapi against Keyturn</title>
<script type="module">
import * as oauth from "./index.js";

const insecure = { [oauth.allowInsecureRequests]: true }; // http on loopback
const issuer = new URL(location.origin);
const client = { client_id: "keyturn" }; // Keyturn's built-in public client
let as, dpop, tokens;

window.start = async (username, password) => {
  const discovery = await oauth.discoveryRequest(issuer, { algorithm: "oauth2", ...insecure }); // RFC 8414
  as = await oauth.processDiscoveryResponse(issuer, discovery);
  dpop = oauth.DPoP(client, await oauth.generateKeyPair("ES256"));
  const headers = new Headers({ "content-type": "application/json" });
  await dpop.addProof(new URL("/auth/login", issuer), headers, "POST"); // the handle's own proof
  const body = JSON.stringify({ username, password });
  const login = await fetch("/auth/login", { method: "POST", headers, body });
  tokens = await login.json();
  return { status: login.status, sid: tokens.session_id, tokenEndpoint: as.token_endpoint };
};

window.refresh = async () => {
  const options = { DPoP: dpop, ...insecure };
  const rt = tokens.refresh_token;
  const response = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), rt, options);
  tokens = await oauth.processRefreshTokenResponse(as, client, response);
  return tokens.token_type;
};

window.me = async () => {
  const url = new URL("/auth/me", issuer);
  const options = { DPoP: dpop, ...insecure };
  const at = tokens.access_token;
  const response = await oauth.protectedResourceRequest(at, "GET", url, new Headers(), null, options);
  return [response.status, (await response.json()).subject];
};

window.refreshToken = () => tokens.refresh_token; // what a thief would copy
window.ready = true;
</script>
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A service requiring DPoP, binding access tokens, whose issuer is its URL (the port chosen first)."""
    port = free_port()
    settings = {**SETTINGS, **DPOP_SETTINGS, "KEYTURN_ISSUER": f"http://127.0.0.1:{port}"}
    data_dir = tmp_path_factory.mktemp("service")
    with cluster(data_dir, 1, settings, "--access-log", "--log-level", "info", port=port) as group:
        assert group.server.url == settings["KEYTURN_ISSUER"]
        yield group


def open_page(context: BrowserContext, service: Cluster) -> Page:
    library = (LIBRARY / "index.js").read_bytes()

    def serve(route: Route) -> None:
        if route.request.url.split("?")[0].endswith("/index.js"):
            route.fulfill(status=200, content_type="text/javascript", body=library)
        else:
            route.fulfill(status=200, content_type="text/html; charset=utf-8", body=PAGE)

    context.route(service.server.url + PAGE_PATH + "**", serve)
    page = context.new_page()
    page.goto(service.server.url + PAGE_PATH)
    page.wait_for_function("() => window.ready === true")
    return page


def stolen(service: Cluster, token: str, key: DpopKey | None) -> tuple[int, Any]:
    """The refresh token presented at ``/oauth/token`` from Python: no proof, or a proof by ``key``. The
    status and Keyturn's code (``keyturn_error``, beside RFC 6749's ``error``)."""
    url = service.server.url + "/oauth/token"
    headers = {} if key is None else {"DPoP": key.proof("POST", url, now=time.time())}
    form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": "keyturn"}
    answer = httpx.post(url, data=form, headers=headers, timeout=30)
    body = answer.json()
    return answer.status_code, body.get("keyturn_error", body.get("error"))


def test_oauth4webapi_refreshes_a_dpop_bound_session_with_its_own_proofs(
    service: Cluster, context: BrowserContext
) -> None:
    if not (LIBRARY / "index.js").is_file():
        pytest.fail("oauth4webapi is missing: `cd clients/js && npm ci` installs it")
    page = open_page(context, service)
    started = page.evaluate("([u, p]) => window.start(u, p)", [service.username, service.password])
    assert started["status"] == 200, started
    assert started["tokenEndpoint"] == service.server.url + "/oauth/token"
    sid = started["sid"]
    bound = session_row(service, sid)
    assert bound.jkt is not None  # bound to oauth4webapi's key by its proof at the login
    log = ServerLog(service)

    token_types = [page.evaluate("() => window.refresh()") for _ in range(REFRESHES)]
    assert token_types == ["dpop"] * REFRESHES  # oauth4webapi lower-cases it
    assert page.evaluate("() => window.me()") == [200, service.username]

    # The refresh token copied out of the page is refused from anywhere else, and changes nothing.
    thief = DpopKey.generate()
    copy = page.evaluate("() => window.refreshToken()")
    attempts = [stolen(service, copy, None), stolen(service, copy, thief)]
    assert page.evaluate("() => window.refresh()") == "dpop"  # the page's own refresh still works
    assert page.evaluate("() => window.me()") == [200, service.username]

    row = session_row(service, sid)
    refreshes = log.requests("POST", "/oauth/token")
    report = f"attempts {attempts}; session {row}; /oauth/token statuses {[r.status for r in refreshes]}"
    assert row.gen == bound.gen + REFRESHES + 1, report  # every rotation oauth4webapi's
    assert row.state == "active", report
    assert row.jkt == bound.jkt, report
    assert [r.status for r in refreshes].count(200) == REFRESHES + 1, report
    # RFC 6749's invalid_grant (400) with Keyturn's reason; no proof at all: the service requires one
    assert attempts == [(400, "invalid_dpop_proof"), (400, "refresh_token_bound")], report
    assert log.events("session.reuse_detected") == [], report
