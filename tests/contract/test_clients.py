"""The registered clients' part of the store contract, on every backend, and the registry on top of it."""

from __future__ import annotations

import pytest

from keyturn.clients import ClientRegistry, secret_key
from keyturn.errors import InvalidClient
from keyturn.oauth import ClientCredentials
from keyturn.testing import FrozenClock
from keyturn.typing import Backend, ClientRecord

from .backends import BackendUnderTest

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


async def test_a_client_reads_back_field_for_field(store: Backend) -> None:
    """A public client (no hash) and a confidential one (its hash) come back exactly as added."""
    public = ClientRecord("spa", NOW)
    confidential = ClientRecord("api.backend", NOW + 0.25, "hmac-sha256$" + "ab" * 32)

    assert await store.add_client(public)
    assert await store.add_client(confidential)

    assert await store.get_client("spa") == public
    assert await store.get_client("api.backend") == confidential
    assert await store.get_client("nobody") is None
    assert await store.list_clients() == [confidential, public]  # by id


async def test_a_clients_dpop_policy_reads_back(store: Backend) -> None:
    """``--dpop required`` is kept with the client, in every backend; the default is ``optional``."""
    strict = ClientRecord("strict", NOW, dpop="required")
    assert await store.add_client(strict)
    assert await store.add_client(ClientRecord("lax", NOW))

    assert await store.get_client("strict") == strict
    assert [c.dpop for c in await store.list_clients()] == ["optional", "required"]  # lax, strict


async def test_an_id_is_registered_once(store: Backend) -> None:
    """A second add of a taken id changes nothing (the first client's secret hash stays)."""
    first = ClientRecord("rs", NOW, "hmac-sha256$first")
    assert await store.add_client(first)

    assert not await store.add_client(ClientRecord("rs", NOW + 1, "hmac-sha256$second"))
    assert await store.get_client("rs") == first


async def test_a_removed_client_is_gone_and_removing_it_again_says_so(store: Backend) -> None:
    await store.add_client(ClientRecord("rs", NOW))

    assert await store.remove_client("rs")
    assert not await store.remove_client("rs")
    assert await store.get_client("rs") is None
    assert await store.list_clients() == []


async def test_another_process_sees_a_client_at_once(backend: BackendUnderTest) -> None:
    """Clients added by the CLI are known to every running server sharing the store."""
    writer, reader = backend.new_store(), backend.new_store()
    await writer.open()
    await reader.open()
    try:
        assert await writer.add_client(ClientRecord("rs", NOW, "hmac-sha256$x"))
        assert await reader.get_client("rs") == ClientRecord("rs", NOW, "hmac-sha256$x")
    finally:
        await writer.close()
        await reader.close()


async def test_a_confidential_clients_secret_is_stored_hashed_and_checked(store: Backend) -> None:
    """The secret is shown once, never stored; the right one authenticates, any other does not."""
    registry = ClientRegistry(store, secret_key("a master secret for the tests"), clock=FrozenClock(NOW))
    added = await registry.add("rs", confidential=True)
    assert added is not None
    assert added.secret is not None

    stored = await store.get_client("rs")
    assert stored is not None
    assert stored.secret_hash is not None
    assert added.secret not in stored.secret_hash
    found = await registry.authenticate(ClientCredentials("rs", added.secret, "client_secret_basic"))
    assert found.client_id == "rs"
    with pytest.raises(InvalidClient):
        await registry.authenticate(ClientCredentials("rs", added.secret + "x", "client_secret_post"))
    with pytest.raises(InvalidClient):
        await registry.authenticate(ClientCredentials("rs"))
