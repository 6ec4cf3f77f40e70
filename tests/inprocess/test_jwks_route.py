"""The JWKS route: read from the store for each request, and a 503 rather than a stale list."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from keyturn.errors import StoreUnavailable
from keyturn.keys import rotate_keys
from keyturn.server.app import create_app
from keyturn.server.runtime import Runtime, open_runtime
from keyturn.testing import fast_hasher, make_settings

pytestmark = pytest.mark.anyio


class FlakyKeys:
    """The runtime's store, whose ``list_keys`` fails while ``down`` is set (an injected outage)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.down = False

    async def list_keys(self) -> Any:
        if self.down:
            raise StoreUnavailable()
        return await self._store.list_keys()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.fixture
async def runtime(anyio_backend: str) -> Any:
    rt = await open_runtime(make_settings(), hasher=fast_hasher())
    try:
        yield rt
    finally:
        await rt.close()


async def jwks(rt: Runtime) -> httpx.Response:
    app = create_app(runtime=rt)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),  # ASGITransport does not run the lifespan itself
        httpx.AsyncClient(transport=transport, base_url="http://keyturn.test") as http,
    ):
        return await http.get("/.well-known/jwks.json")


async def test_a_key_added_by_another_process_is_listed_at_once(runtime: Runtime) -> None:
    """No reload interval to wait for: the key a rotation elsewhere added is in the next answer."""
    before = {k["kid"] for k in (await jwks(runtime)).json()["keys"]}
    ring = await rotate_keys(runtime.store, runtime.master, runtime.settings, runtime.sessions.clock)

    after = {k["kid"] for k in (await jwks(runtime)).json()["keys"]}

    assert ring.active_access.kid not in before
    assert after == before | {ring.active_access.kid}
    assert runtime.sessions.keys.active_access.kid in before  # this process has not reloaded: no matter


async def test_without_the_store_the_answer_is_a_retryable_503_not_an_old_list(runtime: Runtime) -> None:
    flaky = FlakyKeys(runtime.store)
    runtime.store = flaky  # type: ignore[assignment]
    flaky.down = True

    response = await jwks(runtime)

    assert response.status_code == 503
    assert response.json()["error"] == "server_error"
    assert response.json()["retryable"] is True
    assert "keys" not in response.json()
    flaky.down = False
    assert (await jwks(runtime)).status_code == 200


async def test_the_jwks_may_be_kept_by_its_reader_but_not_by_shared_caches(runtime: Runtime) -> None:
    response = await jwks(runtime)

    assert response.headers["cache-control"] == "private, max-age=300"
    assert all("d" not in key for key in response.json()["keys"])  # public halves only
