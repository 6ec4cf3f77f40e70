"""Every backend remembers DPoP proofs' ``jti`` (RFC 9449) so that every process agrees: each is accepted
once until it expires; of the same proof sent at once from several tasks and processes, exactly one passes;
and a session keeps the key it is bound to."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from keyturn.store import open_store
from keyturn.typing import Backend, RefreshRecord, Rotate, SessionRecord

from ._races import in_processes, in_threads
from .backends import SHARED_BACKENDS, BackendUnderTest, isolated

NOW = 1_800_000_000.0
KEY = "a" * 64

pytestmark = pytest.mark.anyio


async def test_a_jti_is_accepted_once_until_it_expires(store: Backend) -> None:
    assert await store.use_dpop_jti(KEY, NOW + 60, NOW) is True
    assert await store.use_dpop_jti(KEY, NOW + 60, NOW + 1) is False
    assert await store.use_dpop_jti("b" * 64, NOW + 60, NOW + 1) is True  # another proof
    assert await store.use_dpop_jti(KEY, NOW + 60, NOW + 59) is False


async def test_an_expired_jti_is_forgotten_by_prune(store: Backend, backend: BackendUnderTest) -> None:
    if backend.name == "redis":
        pytest.skip("Redis forgets it by its TTL, in real time (the next test)")
    assert await store.use_dpop_jti(KEY, NOW + 60, NOW)
    await store.prune(NOW + 61)
    assert await store.use_dpop_jti(KEY, NOW + 200, NOW + 61) is True
    assert await store.use_dpop_jti(KEY, NOW + 200, NOW + 62) is False


async def test_redis_forgets_a_jti_when_its_window_ends(backend: BackendUnderTest) -> None:
    if backend.name != "redis":
        pytest.skip("the TTL is Redis's own")
    store = backend.new_store()
    await store.open()
    try:
        assert await store.use_dpop_jti(KEY, NOW + 0.05, NOW)
        for _ in range(100):  # the key's TTL is 50 ms of Redis's clock
            if await store.use_dpop_jti(KEY, NOW + 60, NOW):
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("Redis kept the jti past its TTL")
    finally:
        await store.close()


async def test_the_same_jti_from_many_tasks_at_once_passes_once(store: Backend) -> None:
    answers = await asyncio.gather(*(store.use_dpop_jti(KEY, NOW + 60, NOW) for _ in range(40)))
    assert Counter(answers) == {True: 1, False: 39}


async def _use(store: Backend, n: int) -> bool:
    return await store.use_dpop_jti(KEY, NOW + 60, NOW)


async def test_the_same_jti_from_threads_with_stores_of_their_own_passes_once(
    backend: BackendUnderTest,
) -> None:
    answers = in_threads(backend, _use, threads=4, per_thread=10)
    assert Counter(answers) == {True: 1, False: 39}


PROCESSES = 4
PER_PROCESS = 10


@pytest.mark.parametrize("shared", SHARED_BACKENDS)
async def test_the_same_jti_from_several_processes_passes_once(shared: str, tmp_path: Path) -> None:
    with isolated(shared, tmp_path) as place:
        first = open_store(place.url)
        await first.open()  # the schema, once: the processes then race on the jti alone
        try:
            answers = in_processes(place.url, _use, processes=PROCESSES, per_process=PER_PROCESS)
            assert Counter(answers) == {True: 1, False: PROCESSES * PER_PROCESS - 1}
            assert await first.use_dpop_jti(KEY, NOW + 60, NOW) is False
        finally:
            await first.close()


async def test_a_session_keeps_its_key_through_reads_and_rotations(store: Backend) -> None:
    head = RefreshRecord("h0", "s1", 0, "rk", int(NOW), int(NOW) + 1000)
    bound = SessionRecord("s1", "alice", NOW, NOW + 5000, head.jti, 0, NOW, jkt="thumb")
    plain_head = RefreshRecord("p0", "s2", 0, "rk", int(NOW), int(NOW) + 1000)
    plain = SessionRecord("s2", "alice", NOW, NOW + 5000, plain_head.jti, 0, NOW)
    await store.create_session(bound, head)
    await store.create_session(plain, plain_head)
    new_head = RefreshRecord("h1", "s1", 1, "rk", int(NOW) + 1, int(NOW) + 1001)
    outcome = await store.refresh("s1", "h0", lambda s, p: Rotate(new_head, NOW + 1))
    assert outcome.session is not None
    assert outcome.session.jkt == "thumb"
    found = await store.get_session("s1")
    assert found is not None
    assert found.jkt == "thumb"
    assert (await store.get_session("s2")) == plain
    assert plain.jkt is None
    assert {s.sid: s.jkt for s in await store.list_sessions("alice")} == {"s1": "thumb", "s2": None}
