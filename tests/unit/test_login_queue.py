"""The built-in user directory bounds its password-hashing queue, for every application that embeds it."""

from __future__ import annotations

import os

import anyio
import pytest
from argon2 import PasswordHasher

from keyturn.errors import InvalidCredentials, Overloaded
from keyturn.events import subscribe
from keyturn.store.memory import MemoryStore
from keyturn.users import UserDirectory

pytestmark = pytest.mark.anyio


async def test_past_the_queue_a_login_is_refused_at_once_and_failures_are_events(anyio_backend: str) -> None:
    """Past the hashing slots and the allowed waiters, a login gets ``Overloaded`` (503, Retry-After)."""
    users = UserDirectory(
        MemoryStore(), hasher=PasswordHasher(time_cost=2, memory_cost=8192), max_waiting_logins=1
    )
    events: list[tuple[str, dict[str, object]]] = []
    unsubscribe = subscribe(lambda event, fields: events.append((event, dict(fields))))
    outcomes: list[str] = []
    overloads: list[Overloaded] = []

    async def attempt(i: int) -> None:
        try:
            await users.authenticate(f"nobody-{i}", "wrong", ip="203.0.113.1")
        except Overloaded as exc:
            overloads.append(exc)
            outcomes.append("overloaded")
        except InvalidCredentials:
            outcomes.append("refused")

    capacity = (os.cpu_count() or 2) + 1
    try:
        async with anyio.create_task_group() as tasks:
            for i in range(capacity + 5):
                tasks.start_soon(attempt, i)
    finally:
        unsubscribe()
    assert outcomes.count("refused") == capacity
    assert outcomes.count("overloaded") == 5
    assert all((e.status, e.code, e.retry_after) == (503, "server_error", 1.0) for e in overloads)
    failed = [fields for event, fields in events if event == "login.failed"]
    assert len(failed) == capacity
    assert all(f["reason"] == "unknown_user" and f["ip"] == "203.0.113.1" for f in failed)
    assert not any("nobody" in str(f) for f in failed)  # the username only as a keyed hash
    # Once the flood has passed, logins are taken again.
    with pytest.raises(InvalidCredentials):
        await users.authenticate("nobody", "wrong")
