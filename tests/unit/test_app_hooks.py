"""An application's hooks, sync or async: a sync one runs in a worker thread, an async one on the loop."""

from __future__ import annotations

import threading

import pytest

from keyturn.server.hooks import claims_source, subject_check

pytestmark = pytest.mark.anyio


async def test_a_sync_hook_runs_in_a_worker_thread_and_an_async_one_on_the_loop() -> None:
    """A sync hook may block (a database call) without stalling the event loop; an async one must not
    pay for a thread."""
    loop_thread = threading.get_ident()
    seen: dict[str, int] = {}

    def sync_check(sub: str) -> bool:
        seen["sync"] = threading.get_ident()
        return sub == "alice"

    async def async_check(sub: str) -> bool:
        seen["async"] = threading.get_ident()
        return sub == "alice"

    class Checker:  # an object whose __call__ is async counts as async
        async def __call__(self, sub: str) -> bool:
            seen["object"] = threading.get_ident()
            return False

    assert await subject_check(sync_check)("alice") is True
    assert await subject_check(sync_check)("bob") is False
    assert await subject_check(async_check)("alice") is True
    assert await subject_check(Checker())("alice") is False
    assert seen["sync"] != loop_thread
    assert seen["async"] == loop_thread
    assert seen["object"] == loop_thread


async def test_claims_must_be_a_mapping() -> None:
    """A hook that returns something else is the application's bug, said plainly."""
    assert await claims_source(lambda sub: {"roles": [sub]})("alice") == {"roles": ["alice"]}
    with pytest.raises(TypeError, match="must return a dict"):
        await claims_source(lambda sub: ["admin"])("alice")  # type: ignore[arg-type,return-value]
