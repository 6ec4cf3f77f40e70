"""Real Chromium (Debian's, never a downloaded one) against a real ``keyturn serve``.

One browser for the whole run, a fresh context (cookies, storage: a new browser profile) for each test,
and one token service per module with a 5 s access token and no leeway, so that a minute holds a dozen
refreshes and an expired token is refused at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from ..e2e._server import Cluster
from ._demo import CHROMIUM, CHROMIUM_ARGS, DEMO_BUNDLE, token_service


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One Chromium for the browser tests, stopped when they are done.

    Playwright's sync API runs an event loop on this thread while it is started: the rest of the suite
    (``asyncio.run``, anyio) must not run under it, so this is package-scoped, never session-scoped.
    """
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium; `make test` installs it"
        )
    if not DEMO_BUNDLE.is_file():
        pytest.fail("the demo page's client bundle is missing: `make js` (or `make test`) builds it")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A new browser profile: no cookie, no storage, its own clock."""
    fresh = browser.new_context()
    try:
        yield fresh
    finally:
        fresh.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """This module's token service: access tokens live 5 s, no leeway, every request in its log."""
    with token_service(tmp_path_factory.mktemp("service")) as group:
        yield group
