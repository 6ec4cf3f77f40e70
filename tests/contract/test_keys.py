"""The key part of the store contract, on every backend: deleting retired keys (``keyturn keys prune``)."""

from __future__ import annotations

import pytest

from keyturn.keys import MasterKey, new_access_key, new_refresh_key
from keyturn.typing import Backend, StoredKey

from .backends import BackendUnderTest

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
MASTER = MasterKey("a master secret for the key contract tests")


async def three_generations(store: Backend) -> list[StoredKey]:
    """The first keys and two rotations: six keys, in creation order (access before refresh each time)."""
    first = await store.ensure_keys([new_access_key("ES256", MASTER, NOW), new_refresh_key(MASTER, NOW)])
    second = [new_access_key("ES256", MASTER, NOW + 10), new_refresh_key(MASTER, NOW + 10)]
    third = [new_access_key("ES256", MASTER, NOW + 20), new_refresh_key(MASTER, NOW + 20)]
    await store.add_keys(second)
    await store.add_keys(third)
    keys = [*first, *second, *third]
    assert await store.list_keys() == keys
    return keys


async def test_delete_keys_removes_exactly_the_named_keys_and_counts_them(store: Backend) -> None:
    """Pruning deletes the retired keys only: the count is what went, unknown ids and repeats add nothing."""
    keys = await three_generations(store)
    old_access, old_refresh = keys[0], keys[1]

    deleted = await store.delete_keys(
        [old_access.kid, "no-such-kid", old_refresh.kid, old_access.kid, old_refresh.kid]
    )

    assert deleted == 2
    assert await store.list_keys() == keys[2:]


async def test_delete_keys_of_unknown_or_already_deleted_ids_counts_nothing(store: Backend) -> None:
    """A second prune (or one racing another process) finds nothing left to delete and says so."""
    keys = await three_generations(store)

    assert await store.delete_keys([]) == 0
    assert await store.delete_keys(["no-such-kid", "another-unknown-kid"]) == 0
    assert await store.list_keys() == keys

    assert await store.delete_keys([keys[2].kid]) == 1
    assert await store.delete_keys([keys[2].kid, keys[2].kid]) == 0
    assert await store.list_keys() == [*keys[:2], *keys[3:]]


async def test_delete_keys_can_delete_every_key_of_a_use(store: Backend) -> None:
    """Deleting all of one use's keys leaves the other use's keys, in order, and nothing else."""
    keys = await three_generations(store)
    access = [k for k in keys if k.use == "access"]
    refresh = [k for k in keys if k.use == "refresh"]

    assert await store.delete_keys([k.kid for k in reversed(access)]) == 3

    assert await store.list_keys() == refresh


async def test_deleted_keys_leave_no_trace_behind(store: Backend) -> None:
    """A deleted key's id is free again, and ``ensure_keys`` no longer counts it as the active key."""
    first = await store.ensure_keys([new_access_key("ES256", MASTER, NOW), new_refresh_key(MASTER, NOW)])
    access, refresh = first

    assert await store.delete_keys([access.kid]) == 1
    replacement = new_access_key("ES256", MASTER, NOW + 5)
    kept = await store.ensure_keys([replacement])

    assert kept == [refresh, replacement]
    await store.add_keys([access])  # its id is not taken any more
    assert {k.kid for k in await store.list_keys()} == {access.kid, refresh.kid, replacement.kid}


async def test_deletion_is_seen_by_another_process(backend: BackendUnderTest) -> None:
    """``keyturn keys prune`` runs in its own process: servers on the same store must see the keys gone."""
    pruner = backend.new_store()
    await pruner.open()
    try:
        keys = await three_generations(pruner)
        assert await pruner.delete_keys([keys[0].kid, keys[1].kid]) == 2
    finally:
        await pruner.close()

    server = backend.new_store()
    await server.open()
    try:
        assert await server.list_keys() == keys[2:]
        assert await server.delete_keys([keys[0].kid, keys[1].kid]) == 0
        assert await server.delete_keys([keys[2].kid]) == 1
        assert await server.list_keys() == keys[3:]
    finally:
        await server.close()
