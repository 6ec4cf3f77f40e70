"""Only the definitive codes end a session; then once, cleanly, and for good (DESIGN sections 3 and 6).

``refresh_token_reused``, ``session_revoked``, ``token_invalid``, ``refresh_token_expired`` and
``session_expired`` from the refresh endpoint mean the session is over. The client must clear its tokens
from the store (a stolen-token scenario must not leave them on disk), tell the application exactly once
(however many threads raced into it) with the reason, and answer every later call with ``SessionEnded``
without another round trip. Each code is produced here by the real service where it can be, and by a
canned answer of the same shape for the table as a whole.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from keyturn.client import FileTokenStore, KeyturnAuth, SessionEnded, TokenManager

from ._client_live import TLS, Canned, Harness, LiveService, MinRandom, live_service

REFRESH = "/auth/refresh"
IDLE = 86_400
ABSOLUTE = 2 * 86_400
CODES = [
    "refresh_token_reused",
    "session_revoked",
    "token_invalid",
    "refresh_token_expired",
    "session_expired",
]


@pytest.fixture(scope="module")
def service() -> Iterator[LiveService]:
    with live_service(refresh_idle_lifetime=IDLE, session_absolute_lifetime=ABSOLUTE) as live:
        yield live


def _assert_over(h: Harness, manager: TokenManager, reason: str, path: Path | None = None) -> None:
    """Ended for ``reason``, told once, tokens gone, and nothing more goes over the wire."""
    assert h.ended == [reason]
    assert manager.state == "ended"
    assert manager.tokens is None
    assert manager.store.load() is None
    if path is not None:
        assert not path.exists()
    sent = len(h.faults.sent)
    resource_hits = h.live.ctl.count("GET", "/resource")
    for call in (manager.access_token, lambda: manager.replace_rejected("anything")):
        with pytest.raises(SessionEnded) as later:
            call()
        assert later.value.reason == reason
    with (
        httpx.Client(base_url=h.live.url, auth=KeyturnAuth(manager), verify=TLS) as http,
        pytest.raises(SessionEnded),
    ):
        http.get("/resource")
    assert len(h.faults.sent) == sent, "an ended session still made calls"
    assert h.live.ctl.count("GET", "/resource") == resource_hits
    assert h.ended == [reason], "told more than once"


@pytest.mark.parametrize("when", ["due", "expired"])
@pytest.mark.parametrize("code", CODES)
def test_a_definitive_answer_ends_the_session(h: Harness, tmp_path: Path, code: str, when: str) -> None:
    path = tmp_path / "tokens.json"
    manager = h.manager(store=FileTokenStore(path))
    h.login(manager)
    assert path.exists()
    h.live.ctl.answer("POST", REFRESH, Canned.error(401, code))
    h.advance(700 if when == "due" else 1000)

    with pytest.raises(SessionEnded) as ended:
        manager.access_token()

    assert ended.value.reason == code
    assert h.live.refreshes() == 1
    _assert_over(h, manager, code, path)


# -- the same codes, from the real service ------------------------------------------------------


def _without_refresh_expiry(h: Harness, manager: TokenManager, **changes: Any) -> None:
    """Start ``manager`` from a login whose answer does not say when the refresh token expires, so only
    the service can tell it has."""
    body = h.live.login_body()
    body.pop("refresh_expires_in")
    body.update(changes)
    manager.set_tokens(body)


def test_reuse_of_a_rotated_refresh_token_ends_the_session(h: Harness) -> None:
    """A thief refreshed with a copy of the token; the user's next refresh is reuse: both lose it."""
    manager = h.manager()
    old = h.login(manager)
    thief = h.live.raw("POST", REFRESH, json={"refresh_token": old.refresh_token})
    assert thief.status_code == 200
    h.advance(700)  # past the grace period, and due

    with pytest.raises(SessionEnded) as ended:
        manager.access_token()

    assert ended.value.reason == "refresh_token_reused"
    _assert_over(h, manager, "refresh_token_reused")
    again = h.live.raw("POST", REFRESH, json={"refresh_token": thief.json()["refresh_token"]})
    assert again.json()["error"] == "session_revoked"


def test_a_session_revoked_on_the_service_ends_here_at_the_next_refresh(h: Harness) -> None:
    manager = h.manager()
    old = h.login(manager)
    logout = h.live.raw("POST", "/auth/logout", headers={"Authorization": f"Bearer {old.access_token}"})
    assert logout.status_code == 200
    h.advance(700)

    with pytest.raises(SessionEnded) as ended:
        manager.access_token()

    assert ended.value.reason == "session_revoked"
    _assert_over(h, manager, "session_revoked")


def test_a_refresh_token_that_does_not_verify_ends_the_session(h: Harness) -> None:
    manager = h.manager()
    body = h.live.login_body()
    good = body["refresh_token"]
    body["refresh_token"] = good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB")
    manager.set_tokens(body)
    h.advance(700)

    with pytest.raises(SessionEnded) as ended:
        manager.access_token()

    assert ended.value.reason == "token_invalid"
    _assert_over(h, manager, "token_invalid")


def test_an_idle_refresh_token_ends_the_session(h: Harness) -> None:
    manager = h.manager()
    _without_refresh_expiry(h, manager)
    h.advance(IDLE + h.live.settings.leeway + 5)

    with pytest.raises(SessionEnded) as ended:
        manager.access_token()

    assert ended.value.reason == "refresh_token_expired"
    assert h.live.refreshes() == 1
    _assert_over(h, manager, "refresh_token_expired")


def test_a_session_past_its_absolute_lifetime_ends(h: Harness) -> None:
    manager = h.manager()
    _without_refresh_expiry(h, manager)
    h.advance(ABSOLUTE + 5)

    with pytest.raises(SessionEnded) as ended:
        manager.access_token()

    assert ended.value.reason == "session_expired"
    _assert_over(h, manager, "session_expired")


# -- racing into the end ------------------------------------------------------------------------


def test_fifty_threads_racing_into_a_revoked_session_are_told_once(h: Harness) -> None:
    h.live.ctl.delay("POST", REFRESH, 0.2)
    manager = h.manager()
    old = h.login(manager)
    h.live.raw("POST", "/auth/logout", headers={"Authorization": f"Bearer {old.access_token}"})
    h.advance(1000)
    barrier = threading.Barrier(50)
    reasons: list[str] = []
    lock = threading.Lock()

    def need_a_token() -> None:
        barrier.wait(10)
        try:
            manager.access_token()
        except SessionEnded as ended:
            with lock:
                reasons.append(ended.reason)

    threads = [threading.Thread(target=need_a_token) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert reasons == ["session_revoked"] * 50
    assert h.live.refreshes() == 1
    assert h.ended == ["session_revoked"]


@pytest.mark.anyio
async def test_tasks_racing_into_a_revoked_session_are_told_once(ah: Harness) -> None:
    ah.live.ctl.delay("POST", REFRESH, 0.2)
    manager = ah.manager(asynchronous=True)
    old = ah.login(manager)
    ah.live.raw("POST", "/auth/logout", headers={"Authorization": f"Bearer {old.access_token}"})
    ah.advance(1000)

    results = await asyncio.gather(*(manager.aaccess_token() for _ in range(100)), return_exceptions=True)

    assert all(isinstance(r, SessionEnded) and r.reason == "session_revoked" for r in results)
    assert ah.live.refreshes() == 1
    assert ah.ended == ["session_revoked"]


def test_many_requests_meeting_a_revoked_token_end_the_session_once(h: Harness) -> None:
    """Resource servers answer ``token_revoked`` to every request in flight; one refresh tells the session
    is over (``session_revoked``), and the application hears of the end once."""
    h.live.ctl.delay("GET", "/resource", 0.2)
    manager = h.manager()
    old = h.login(manager)
    h.live.raw("POST", "/auth/logout", headers={"Authorization": f"Bearer {old.access_token}"})
    outcomes: list[object] = []
    lock = threading.Lock()

    def request() -> None:
        with httpx.Client(base_url=h.live.url, auth=KeyturnAuth(manager), verify=TLS) as http:
            try:
                outcome: object = http.get("/resource").status_code
            except SessionEnded as ended:
                outcome = ended.reason
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=request) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(outcomes) == 20
    assert set(outcomes) == {"session_revoked"}
    assert h.ended == ["session_revoked"]
    assert h.live.refreshes() == 1


def test_the_end_callback_runs_outside_the_lock(h: Harness) -> None:
    """An application that logs straight back in from its callback must not deadlock the client."""
    manager: TokenManager | None = None
    reasons: list[str] = []

    def log_in_again(reason: str) -> None:
        reasons.append(reason)
        assert manager is not None
        h.login(manager)

    manager = h.manager(on_session_ended=log_in_again)
    h.login(manager)
    h.live.ctl.answer("POST", REFRESH, Canned.error(401, "session_revoked"))
    h.advance(700)
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(_try(manager.access_token)), daemon=True)
    thread.start()
    thread.join(20)

    assert not thread.is_alive(), "deadlocked in the callback"
    assert reasons == ["session_revoked"]
    assert manager.state == "active"
    assert isinstance(manager.access_token(), str)


def _try(call: Any) -> object:
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - the caller inspects it
        return exc


def test_a_new_login_after_an_end_is_a_new_session_with_its_own_end(h: Harness) -> None:
    manager = h.manager()
    h.login(manager)
    h.live.ctl.answer("POST", REFRESH, Canned.error(401, "session_revoked"))
    h.advance(700)
    with pytest.raises(SessionEnded):
        manager.access_token()

    second = h.login(manager)
    assert manager.state == "active"
    assert manager.access_token() == second.access_token
    h.live.ctl.answer("POST", REFRESH, Canned.error(401, "refresh_token_reused"))
    h.advance(700)
    with pytest.raises(SessionEnded):
        manager.access_token()

    assert h.ended == ["session_revoked", "refresh_token_reused"]


def test_a_temporary_failure_then_a_definitive_answer_still_ends_once(h: Harness) -> None:
    """Degraded first, then told the session is over: the end must still happen, once."""
    manager = h.manager(rng=MinRandom())  # no wait: the client's clock is frozen
    old = h.login(manager)
    h.faults.plan(REFRESH, "connect")
    h.live.raw("POST", "/auth/logout", headers={"Authorization": f"Bearer {old.access_token}"})
    h.advance(1000)

    with pytest.raises(SessionEnded) as ended:
        manager.access_token()

    assert ended.value.reason == "session_revoked"
    assert "degraded" in h.states
    _assert_over(h, manager, "session_revoked")
