"""A login racing a password change or a disable must not leave a session behind."""

from __future__ import annotations

import asyncio
import threading

import pytest

from keyturn.errors import InvalidCredentials
from keyturn.testing import make_service

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("change", ["password", "disable"])
async def test_a_login_checked_just_before_a_change_ends_without_a_session(change: str) -> None:
    """The old password was right when checked, but the change happened before the session existed:
    the change must still win, or an attacker with the old password keeps a session."""
    ts = await make_service(check_subjects=True)
    await ts.users.add("alice", "old password")
    checking, release = threading.Event(), threading.Event()
    verify = ts.users._verify

    def gated_verify(digest: str, password: str) -> bool:
        checking.set()
        assert release.wait(10)
        return verify(digest, password)

    ts.users._verify = gated_verify  # type: ignore[method-assign]
    login = asyncio.create_task(ts.users.login("alice", "old password"))
    # Wait until the login has read the user and is inside the password check.
    assert await asyncio.to_thread(checking.wait, 10)
    if change == "password":
        assert await ts.users.set_password("alice", "new password")
    else:
        assert await ts.users.set_disabled("alice", True)
    release.set()

    with pytest.raises(InvalidCredentials):
        await login
    assert await ts.service.list_sessions("alice") == []
