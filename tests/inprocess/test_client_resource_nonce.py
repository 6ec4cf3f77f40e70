"""A resource server of the application's may demand DPoP nonces of its own (RFC 9449 section 9): it answers
401 ``WWW-Authenticate: DPoP error="use_dpop_nonce"`` with a ``DPoP-Nonce``, and the client's auth classes
(httpx sync and async, requests) send the request once more with a new proof carrying that nonce, then use
it for that server's later requests. Nonces are kept per origin: the token service's never goes to the
resource server, nor the resource server's to the token service. (Regression: the 401 was handed over, and
the token service's nonce went out in the resource server's proofs.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .._threaded import serving
from ._client_live import Harness, LiveService, live_service
from ._resource import MODES, Resource, send

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def service() -> Iterator[LiveService]:
    """The token service with bound access tokens and nonces of its own."""
    with live_service(dpop_bind_access_tokens=True, dpop_nonces=True) as live:
        yield live


@pytest.mark.parametrize("mode", MODES)
async def test_a_resource_servers_nonce_is_asked_for_once_then_used(ah: Harness, mode: str) -> None:
    resource = Resource(ah.live)
    manager = ah.manager(dpop=True, asynchronous=mode == "httpx-async")
    ah.login(manager)  # asked the token service's nonce, then sent it
    assert ah.live.ctl.count("POST", "/auth/login") == 2
    with serving(resource.app()) as base:
        first = await send(manager, mode, base + "/orders")
        later = await send(manager, mode, base + "/orders", "POST")  # POST too: a 401 acted on nothing
    nonce = resource.nonce()
    # The first proof carried no nonce (not the token service's), the second the resource server's, and
    # the later request went with it at once.
    assert resource.nonces_sent == [None, nonce, nonce]
    assert (first.status, later.status, later.answers) == (200, 200, 1)
    # The token service's nonce was kept apart: the logout's proof carries it, asked for nothing again.
    if mode == "httpx-async":
        await manager.alogout()
    else:
        manager.logout()
    assert ah.live.ctl.count("POST", "/auth/logout") == 1


@pytest.mark.parametrize("mode", MODES)
async def test_a_resource_server_that_asks_again_gets_its_401_after_one_resend(
    ah: Harness, mode: str
) -> None:
    resource = Resource(ah.live, rotate=True)
    manager = ah.manager(dpop=True, asynchronous=mode == "httpx-async")
    ah.login(manager)
    with serving(resource.app()) as base:
        sent = await send(manager, mode, base + "/orders")
    assert sent.status == 401
    assert len(resource.nonces_sent) == 2
    assert ah.ended == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_nonce_handed_out_with_a_success_goes_in_the_next_proof(ah: Harness, mode: str) -> None:
    """A resource server may hand out its next nonce on a 200 (RFC 9449 sections 8.2 and 9): the next
    request's proof carries it, with no ``use_dpop_nonce`` round trip. (Regression: a settled answer's
    ``DPoP-Nonce`` was never kept, so each rotation cost a 401 and a resend.)"""
    resource = Resource(ah.live, rotate_on_success=True)
    manager = ah.manager(dpop=True, asynchronous=mode == "httpx-async")
    ah.login(manager)
    with serving(resource.app()) as base:
        first = await send(manager, mode, base + "/orders")  # no nonce yet: asked for one
        later = [await send(manager, mode, base + "/orders", "POST", body="bytes", data=b"x") for _ in "ab"]
    assert (first.status, first.answers) == (200, 2)
    assert [(sent.status, sent.answers) for sent in later] == [(200, 1), (200, 1)]
    assert len(resource.nonces_sent) == 4
    assert len(set(resource.nonces_sent[1:])) == 3  # each proof with the nonce the answer before brought
