"""Processes starting together on a fresh store: one schema, one key set, no error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keyturn.keys import MasterKey, new_access_key, new_refresh_key
from keyturn.typing import Backend, StoredKey

from ._races import in_threads
from .backends import SHARED_BACKENDS, BackendUnderTest, isolated

pytestmark = pytest.mark.anyio

MASTER = MasterKey("a master secret for the start-up tests")
STARTERS = 6


@pytest.fixture(params=SHARED_BACKENDS)
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BackendUnderTest]:
    """An empty place of a backend several processes can share."""
    with isolated(request.param, tmp_path) as place:
        yield place


async def test_stores_opened_at_once_on_a_fresh_place_migrate_once_and_share_one_key_set(
    fresh: BackendUnderTest,
) -> None:
    """Deploys start several processes at the same moment on an empty database."""

    async def start(store: Backend, index: int) -> list[StoredKey]:
        now = 1_800_000_000.0 + index
        return await store.ensure_keys([new_access_key("ES256", MASTER, now), new_refresh_key(MASTER, now)])

    results = in_threads(fresh, start, threads=STARTERS, per_thread=1, open_at_once=True)

    kid_sets = {frozenset(k.kid for k in keys) for keys in results}
    assert len(kid_sets) == 1
    (kids,) = kid_sets
    assert len(kids) == 2
