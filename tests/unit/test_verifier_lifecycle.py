"""``AccessTokenVerifier``'s life: it starts on first use, closes cleanly (idempotently, leaving no
thread), and starts again when used after a close.
"""

from __future__ import annotations

import pytest

from keyturn.errors import TokenRevoked
from keyturn.middleware import AccessTokenVerifier
from keyturn.testing import TestService

from ._verifier import eventually, flaky_verifier, verifier_on, verifier_threads

pytestmark = pytest.mark.anyio


async def test_the_verifier_starts_on_first_use(ts: TestService) -> None:
    """A framework integration may never call ``start``: the first ``verify`` must do it."""
    pair = await ts.service.start("alice")
    verifier = verifier_on(ts)
    try:
        assert verifier.status()["keys"] == 0
        assert verifier.verify(pair.access_token).sid == pair.session_id
        assert verifier.status()["keys"] == 1
        assert verifier.status()["healthy"] is True
    finally:
        verifier.close()


async def test_close_is_idempotent_and_stops_the_thread_and_the_sources(ts: TestService) -> None:
    """A framework may close on shutdown and again in a finaliser; neither may fail or leak a thread."""
    before = verifier_threads()
    verifier, feed = flaky_verifier(ts)
    verifier.start()
    assert verifier_threads() == before + 1

    verifier.close()
    verifier.close()
    await verifier.aclose()

    assert verifier_threads() == before
    assert feed.closes == 1


async def test_a_closed_verifier_starts_again_when_used_and_closes_again(ts: TestService) -> None:
    """An app's lifespan closes the verifier at shutdown; a second lifespan (tests run several) must find
    it working again, not answer 500s. Each start is matched by a close: no thread is left behind."""
    pair = await ts.service.start("alice")
    before = verifier_threads()
    verifier = verifier_on(ts)
    with verifier:
        verifier.verify(pair.access_token)
    assert verifier_threads() == before

    assert verifier.verify(pair.access_token).sid == pair.session_id
    assert (await verifier.averify(pair.access_token)).sid == pair.session_id
    assert verifier_threads() == before + 1
    await ts.service.logout(access_token=pair.access_token)
    await eventually(lambda: verifier.status()["revocations"] == 1, "the restarted verifier polls the feed")
    with pytest.raises(TokenRevoked):
        verifier.verify(pair.access_token)
    verifier.close()
    assert verifier_threads() == before


async def test_a_store_backed_verifier_takes_route_prefix_and_ignores_it(ts: TestService) -> None:
    """``route_prefix`` says where a service's feed is; settings shared with a service-backed verifier
    (Django's ``KEYTURN``) build a store-backed one too, instead of a ``TypeError``."""
    pair = await ts.service.start("alice")
    with AccessTokenVerifier.for_store(ts.store, clock=ts.clock, route_prefix="/api/auth") as verifier:
        assert verifier.verify(pair.access_token).sid == pair.session_id
