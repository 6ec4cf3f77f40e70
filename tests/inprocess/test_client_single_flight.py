"""One refresh in flight at a time, across threads and asyncio tasks (DESIGN section 6).

Two refreshes of one pair race on the service: the second presents a rotated refresh token, and past the
grace period that is reuse, which revokes the whole session. So however many callers need a token at
once, the service must see one refresh; callers that find the pair already refreshed must skip theirs.
Refreshes are counted where they arrive: at the real service.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from keyturn.client import FileTokenStore, SessionEnded

from ._client_live import Harness

REFRESH = ("POST", "/auth/refresh")


def _in_threads(count: int, work: object) -> list[object]:
    """Run ``work()`` in ``count`` threads released together; their results (or exceptions)."""
    assert callable(work)
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(index: int) -> None:
        barrier.wait(10)
        try:
            results[index] = work()
        except Exception as exc:  # noqa: BLE001 - the test looks at what each thread got
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    return results


def test_fifty_threads_with_an_expired_token_cause_one_refresh(h: Harness) -> None:
    """Every thread needs a new token (the old one is unusable): they all wait for the one refresh."""
    h.live.ctl.delay(*REFRESH, 0.3)  # the refresh takes a while: everyone piles up behind it
    manager = h.manager()
    old = h.login(manager)
    h.advance(1000)

    results = _in_threads(50, manager.access_token)

    assert h.live.refreshes() == 1
    assert all(isinstance(r, str) for r in results), "a thread failed"
    assert len(set(results)) == 1
    assert old.access_token not in results
    assert manager.state == "active"


def test_fifty_threads_with_a_due_token_cause_one_refresh(h: Harness) -> None:
    """A due but still valid token: one thread refreshes, the others go on with the valid token."""
    h.live.ctl.delay(*REFRESH, 0.3)
    manager = h.manager()
    old = h.login(manager)
    h.advance(700)

    results = _in_threads(50, manager.access_token)

    assert h.live.refreshes() == 1
    assert all(isinstance(r, str) for r in results), "a thread failed"
    assert manager.tokens is not None
    assert set(results) <= {old.access_token, manager.tokens.access_token}
    assert manager.tokens.access_token != old.access_token


@pytest.mark.anyio
async def test_three_hundred_tasks_with_an_expired_token_cause_one_refresh(ah: Harness) -> None:
    """The asyncio side of the same promise: tasks of one loop share one refresh."""
    ah.live.ctl.delay(*REFRESH, 0.3)
    manager = ah.manager(asynchronous=True)
    old = ah.login(manager)
    ah.advance(1000)

    results = await asyncio.gather(*(manager.aaccess_token() for _ in range(300)))

    assert ah.live.refreshes() == 1
    assert len(set(results)) == 1
    assert old.access_token not in results


@pytest.mark.anyio
async def test_tasks_and_threads_together_cause_one_refresh(ah: Harness) -> None:
    """Threads and tasks share one lock: an application that mixes them must not refresh twice."""
    ah.live.ctl.delay(*REFRESH, 0.3)
    manager = ah.manager(asynchronous=True)
    ah.login(manager)
    ah.advance(1000)

    thread_results: list[object] = []
    threads_done = asyncio.get_running_loop().run_in_executor(
        None, lambda: thread_results.extend(_in_threads(20, manager.access_token))
    )
    task_results = await asyncio.gather(*(manager.aaccess_token() for _ in range(100)))
    await asyncio.wait_for(threads_done, 30)

    assert ah.live.refreshes() == 1
    assert all(isinstance(r, str) for r in thread_results)
    assert len({*task_results, *thread_results}) == 1


def test_a_caller_that_finds_the_pair_already_refreshed_skips_the_refresh(h: Harness) -> None:
    """Two requests carried the same token and both got 401 token_expired: the second must take the
    first's new token, not refresh again with a refresh token that was just rotated."""
    manager = h.manager()
    old = h.login(manager)
    h.live.clock.advance(1000)  # the service says the token expired; the client has not noticed

    first = manager.replace_rejected(old.access_token)
    second = manager.replace_rejected(old.access_token)

    assert first == second != old.access_token
    assert h.live.refreshes() == 1


def test_many_threads_replacing_one_rejected_token_refresh_once(h: Harness) -> None:
    h.live.ctl.delay(*REFRESH, 0.3)
    manager = h.manager()
    old = h.login(manager)
    h.live.clock.advance(1000)

    results = _in_threads(30, lambda: manager.replace_rejected(old.access_token))

    assert h.live.refreshes() == 1
    assert len(set(results)) == 1
    assert old.access_token not in results


def test_two_managers_on_one_token_store_do_not_refresh_a_rotated_token(h: Harness, tmp_path: Path) -> None:
    """Two runs of a command-line tool share one token file. When the first has refreshed, the second
    must take the stored pair (DESIGN: "after taking the lock, re-read the stored pair"; "one lock per
    token store"), not present the rotated refresh token: past the grace period that is reuse, and the
    service revokes the user's session."""
    path = tmp_path / "tokens.json"
    first = h.manager(store=FileTokenStore(path))
    h.login(first)
    second = h.manager(store=FileTokenStore(path))  # the second run starts with the same pair
    h.advance(700)
    refreshed = first.access_token()
    h.advance(h.live.settings.grace_period + 30)  # the second's old pair is due, long rotated

    try:
        token = second.access_token()
    except SessionEnded as ended:
        pytest.fail(f"the second manager ended the session: {ended.reason}")
    took_the_stored_pair = token == refreshed
    assert took_the_stored_pair
    assert h.live.refreshes() == 1
    assert h.live.raw("GET", "/resource", headers={"Authorization": f"Bearer {token}"}).status_code == 200
