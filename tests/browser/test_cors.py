"""CORS (``KEYTURN_CORS_ORIGINS``) in real Chromium: a page on one origin, the token service on another.

The page is served by a tiny static server (uvicorn in this process) on ``127.0.0.1:A``, and the browser
client on it talks to a real ``keyturn serve`` at ``http://localhost:B``, as a single-page app on
``app.example.com`` would to ``auth.example.com``:

- from ``http://localhost:A`` in cookie mode: another origin, but the same site (ports do not make a site),
  so the ``SameSite=Strict`` refresh cookie goes with the calls: login, the client's own refresh (a
  preflight for ``X-Keyturn-CSRF``, then the cookie), ``/auth/me`` with the access token;
- from ``http://127.0.0.1:A`` in body mode: another site, where cookie mode cannot work and body mode does;
- from ``http://localhost:C``, an origin the setting does not list: the browser never sends the login (its
  preflight is refused) and the page gets no answer.

Each page also reads ``WWW-Authenticate`` from a 401, which a page on another origin can read only when the
service exposes it. Run with ``KEYTURN_CORS_ORIGINS`` left out of :func:`service`, the first two fail as
the third does: the browser blocks every call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import BrowserContext
from starlette.applications import Starlette
from starlette.responses import FileResponse, HTMLResponse
from starlette.routing import Route

from .._threaded import serving
from ..e2e._server import Cluster
from ._demo import DEMO_BUNDLE, ServerLog, token_service

PAGE = """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>Keyturn client on another origin</title>
<script type="module">
import { createSession } from "./keyturn.js";

// Log in, wait for the client's own refresh, call /auth/me with the token, read a 401's WWW-Authenticate.
window.run = async ({ api, mode, username, password }) => {
  const result = { origin: location.origin };
  const session = createSession({ baseUrl: api, mode, storage: sessionStorage });
  try {
    // The login is generation 1 (its own "refreshed" event); the client's first refresh makes generation 2.
    const refreshed = new Promise((done) => session.on("refreshed", (e) => e.generation > 1 && done(e)));
    try {
      await session.login(username, password);
    } catch (error) {
      result.login = `${error.name}: ${error.message}`;
      return result;
    }
    result.login = "ok";
    const timeout = new Promise((resolve) => setTimeout(() => resolve(null), 8000));
    const event = await Promise.race([refreshed, timeout]);
    result.refreshed = event && { remote: event.remote, generation: event.generation };
    const token = await session.getAccessToken();
    result.me = (await fetch(`${api}/auth/me`, { headers: { Authorization: `Bearer ${token}` } })).status;
    const refused = await fetch(`${api}/auth/me`, { headers: { Authorization: "Bearer nope" } });
    result.refused = refused.status;
    result.challenge = refused.headers.get("WWW-Authenticate")?.split(",")[0];
    result.state = session.state;
    return result;
  } finally {
    session.close();
  }
};
window.ready = true;
</script>
"""

STATIC = Starlette(
    routes=[
        Route("/", lambda request: HTMLResponse(PAGE)),
        Route("/keyturn.js", lambda request: FileResponse(DEMO_BUNDLE, media_type="text/javascript")),
    ]
)


@pytest.fixture(scope="module")
def pages() -> Iterator[tuple[int, int]]:
    """Two static servers of the page: the port of the one whose origins are listed, and the other's."""
    with serving(STATIC) as listed, serving(STATIC) as unlisted:
        yield int(listed.rsplit(":", 1)[1]), int(unlisted.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, pages: tuple[int, int]) -> Iterator[Cluster]:
    """The token service, allowing the page at ``localhost:A`` and ``127.0.0.1:A``; access tokens live 3 s
    so that the client refreshes within two."""
    port = pages[0]
    origins = f"http://localhost:{port},http://127.0.0.1:{port}"
    with token_service(
        tmp_path_factory.mktemp("service"), KEYTURN_CORS_ORIGINS=origins, KEYTURN_ACCESS_TOKEN_LIFETIME="3"
    ) as group:
        yield group


def api(service: Cluster) -> str:
    """The token service's origin for the pages: ``http://localhost:B``."""
    return service.server.url.replace("//127.0.0.1:", "//localhost:")


def run(context: BrowserContext, service: Cluster, page_url: str, mode: str) -> dict[str, Any]:
    page = context.new_page()
    page.goto(page_url)
    page.wait_for_function("() => window.ready === true")
    arg = {"api": api(service), "mode": mode, "username": service.username, "password": service.password}
    result: dict[str, Any] = page.evaluate("(arg) => window.run(arg)", arg)
    page.close()
    return result


def test_a_page_on_a_listed_origin_logs_in_and_refreshes_an_unlisted_one_is_blocked(
    context: BrowserContext, service: Cluster, pages: tuple[int, int]
) -> None:
    listed, unlisted = pages
    log = ServerLog(service)
    expected = {
        "login": "ok",
        "refreshed": {"remote": False, "generation": 2},
        "me": 200,
        "refused": 401,
        "challenge": 'Bearer realm="keyturn"',  # null unless exposed
        "state": "active",
    }
    # Same site, another origin: cookie mode, its cookie sent with the client's refresh.
    cookie = run(context, service, f"http://localhost:{listed}/", "cookie")
    assert cookie == {"origin": f"http://localhost:{listed}", **expected}
    assert [c["name"] for c in context.cookies(f"{api(service)}/auth/refresh")] == ["keyturn_refresh"]
    # Another site: body mode.
    body = run(context, service, f"http://127.0.0.1:{listed}/", "body")
    assert body == {"origin": f"http://127.0.0.1:{listed}", **expected}
    logins = log.requests(path="/auth/login")
    refreshes = log.requests(path="/auth/refresh")
    assert [(r.method, r.status) for r in logins] == [("OPTIONS", 200), ("POST", 200)] * 2
    # Each page's refresh: a preflight (X-Keyturn-CSRF, or JSON), then the call.
    assert {(r.method, r.status) for r in refreshes} == {("OPTIONS", 200), ("POST", 200)}
    assert sum(r.method == "POST" for r in refreshes) >= 2

    # Not listed: the preflight is refused, and the login never sent.
    blocked_log = ServerLog(service)
    blocked = run(context, service, f"http://localhost:{unlisted}/", "cookie")
    assert blocked["login"] != "ok", blocked
    assert "refreshed" not in blocked
    assert [(r.method, r.status) for r in blocked_log.requests(path="/auth/login")] == [("OPTIONS", 400)]
