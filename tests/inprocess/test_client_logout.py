"""``TokenManager.logout``: the user's own end of the session, on the service when it can be reached.

The application must be able to tell a logout from an expiry or a revocation (``on_session_ended`` says
``"logout"``, once), the service must really revoke the session (else the refresh token on disk, or a
copy of it, lives on), and an unreachable service must not keep a user from logging out here.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from keyturn.client import SessionEnded, TokenManager

from ._client_live import Canned, Harness

REFRESH = "/auth/refresh"


def _session_is_revoked(h: Harness, refresh_token: str, access_token: str | None = None) -> bool:
    """Whether the service refuses the session's refresh token (and its access token, if given)."""
    refreshed = h.live.raw("POST", REFRESH, json={"refresh_token": refresh_token})
    revoked = refreshed.status_code == 401 and refreshed.json()["error"] == "session_revoked"
    if access_token is not None:
        used = h.live.raw("GET", "/resource", headers={"Authorization": f"Bearer {access_token}"})
        revoked = revoked and used.status_code == 401 and used.json()["error"] == "token_revoked"
    return revoked


def test_logout_revokes_the_session_on_the_service_and_tells_the_application_once(h: Harness) -> None:
    manager = h.manager()
    pair = h.login(manager)

    manager.logout()

    assert h.ended == ["logout"]
    assert manager.state == "ended"
    assert manager.store.load() is None
    assert h.live.ctl.count("POST", "/auth/logout") == 1
    assert _session_is_revoked(h, pair.refresh_token, pair.access_token)
    sent = len(h.faults.sent)
    with pytest.raises(SessionEnded) as later:
        manager.access_token()
    assert later.value.reason == "logout"

    manager.logout()  # a second click on "log out"

    assert h.ended == ["logout"]
    assert len(h.faults.sent) == sent


def test_logout_everywhere_ends_the_users_other_sessions_too(h: Harness) -> None:
    laptop = h.manager()
    h.login(laptop)
    phone_ended: list[str] = []
    phone = h.manager(on_session_ended=phone_ended.append)
    h.login(phone)

    laptop.logout(everywhere=True)
    h.advance(700)

    assert h.live.ctl.count("POST", "/auth/logout-all") == 1
    with pytest.raises(SessionEnded) as ended:
        phone.access_token()
    assert ended.value.reason == "session_revoked"
    assert phone_ended == ["session_revoked"]
    assert h.ended == ["logout"]


def test_logout_with_an_expired_access_token_still_revokes_the_session(h: Harness) -> None:
    """A laptop wakes after an hour and the user logs out. The pair's access token has expired, its
    refresh token has not: the service must still end the session, or the refresh token (and any copy a
    thief holds) keeps it alive for the whole idle lifetime after the user believes they logged out."""
    manager = h.manager()
    pair = h.login(manager)
    h.advance(3600)

    manager.logout()

    assert h.ended == ["logout"]
    assert _session_is_revoked(h, pair.refresh_token), "the session is still alive"


def test_logout_with_an_unreachable_service_ends_the_session_here(h: Harness) -> None:
    manager = h.manager()
    h.login(manager)
    h.faults.plan("/auth/logout", "connect")

    manager.logout()

    assert h.ended == ["logout"]
    assert manager.state == "ended"
    assert manager.store.load() is None
    assert h.faults.count("/auth/logout") == 1


def test_logout_with_no_service_at_all_ends_the_session_here(h: Harness) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ended: list[str] = []
    manager = TokenManager(f"http://127.0.0.1:{port}", clock=h.clock, on_session_ended=ended.append)
    manager.set_tokens(h.live.login_body())
    try:
        manager.logout()
    finally:
        manager.close()

    assert ended == ["logout"]
    assert manager.state == "ended"


def test_logout_against_a_service_that_never_answers_gives_up_after_the_timeout(h: Harness) -> None:
    """A hung service (it accepts the connection, never answers) must not hang the user's logout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # connections complete in the backlog; nobody ever reads them
    ended: list[str] = []
    manager = TokenManager(
        f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.5, on_session_ended=ended.append
    )
    manager.set_tokens(h.live.login_body())
    worker = threading.Thread(target=manager.logout, daemon=True)
    started = time.monotonic()
    try:
        worker.start()
        worker.join(15)
        finished = not worker.is_alive()
    finally:
        listener.close()  # frees a hung logout, if any
        worker.join(5)
        manager.close()

    assert finished, "logout hung"
    assert time.monotonic() - started < 15
    assert ended == ["logout"]


def test_logout_answered_with_an_error_still_ends_the_session_here(h: Harness) -> None:
    manager = h.manager()
    h.login(manager)
    h.live.ctl.answer("POST", "/auth/logout", Canned.error(503, "server_error"))

    manager.logout()

    assert h.ended == ["logout"]
    assert manager.store.load() is None


def test_logout_after_the_session_already_ended_is_not_a_second_end(h: Harness) -> None:
    """A revoked session that the user then "logs out" of: the application heard why it ended, once."""
    manager = h.manager()
    h.login(manager)
    h.live.ctl.answer("POST", REFRESH, Canned.error(401, "refresh_token_reused"))
    h.advance(700)
    with pytest.raises(SessionEnded):
        manager.access_token()
    sent = len(h.faults.sent)

    manager.logout()

    assert h.ended == ["refresh_token_reused"]
    assert len(h.faults.sent) == sent


@pytest.mark.anyio
async def test_async_logout_revokes_the_session(ah: Harness) -> None:
    manager = ah.manager(asynchronous=True)
    pair = ah.login(manager)

    await manager.alogout()

    assert ah.ended == ["logout"]
    assert manager.store.load() is None
    assert _session_is_revoked(ah, pair.refresh_token, pair.access_token)
    with pytest.raises(SessionEnded):
        await manager.aaccess_token()


@pytest.mark.anyio
async def test_async_logout_with_an_unreachable_service_ends_the_session_here(ah: Harness) -> None:
    manager = ah.manager(asynchronous=True)
    ah.login(manager)
    ah.faults.plan("/auth/logout", "connect")

    await manager.alogout()

    assert ah.ended == ["logout"]
    assert manager.state == "ended"
