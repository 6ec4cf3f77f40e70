"""Processes starting together on a fresh store: one schema, one key set, no error."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyturn.keys import MasterKey, new_access_key, new_refresh_key
from keyturn.typing import StoredKey

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
    barrier = threading.Barrier(STARTERS, timeout=60)
    results: list[list[StoredKey]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def start(index: int) -> None:
        async def run() -> list[StoredKey]:
            store = fresh.new_store()
            barrier.wait()
            await store.open()
            try:
                now = 1_800_000_000.0 + index
                return await store.ensure_keys(
                    [new_access_key("ES256", MASTER, now), new_refresh_key(MASTER, now)]
                )
            finally:
                await store.close()

        try:
            got = asyncio.run(run())
        except BaseException as exc:  # noqa: BLE001 - a thread hands every failure to the test to report
            with lock:
                errors.append(exc)
            return
        with lock:
            results.append(got)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(STARTERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    assert errors == []
    assert len(results) == STARTERS
    kid_sets = {frozenset(k.kid for k in keys) for keys in results}
    assert len(kid_sets) == 1
    (kids,) = kid_sets
    assert len(kids) == 2
