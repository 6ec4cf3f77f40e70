"""A login the service turns away for now (503 ``server_error`` with ``Retry-After``: its login queue is
full) is tried again after that wait, a few times at most and within a deadline; every other refusal is
``LoginFailed`` at once. The service is the real one, answering 503 on command."""

from __future__ import annotations

import time

import pytest

from keyturn.client import LoginFailed
from keyturn.client._flow import LOGIN_TRIES

from ._client_live import Canned, Harness

LOGIN = "/auth/login"
BUSY = Canned.error(503, "server_error", retry_after="1")


def test_a_login_turned_away_with_503_is_tried_again_after_retry_after(h: Harness) -> None:
    manager = h.manager()
    h.live.ctl.answer("POST", LOGIN, BUSY)
    started = time.monotonic()

    tokens = h.login(manager)

    assert time.monotonic() - started >= 1.0  # Retry-After was waited
    assert h.live.ctl.count("POST", LOGIN) == 2
    assert manager.state == "active"
    assert manager.tokens == tokens


@pytest.mark.anyio
async def test_an_async_login_is_tried_again_too(ah: Harness) -> None:
    manager = ah.manager(asynchronous=True)
    ah.live.ctl.answer("POST", LOGIN, Canned.error(503, "server_error", retry_after="0"))

    await manager.alogin(ah.live.username, ah.live.password)

    assert ah.live.ctl.count("POST", LOGIN) == 2
    assert manager.state == "active"


def test_a_login_turned_away_every_time_fails_after_a_few_tries(h: Harness) -> None:
    manager = h.manager()
    h.live.ctl.answer("POST", LOGIN, *[Canned.error(503, "server_error", retry_after="0")] * 10)

    with pytest.raises(LoginFailed) as failed:
        h.login(manager)

    assert (failed.value.status, failed.value.code) == (503, "server_error")
    assert h.live.ctl.count("POST", LOGIN) == LOGIN_TRIES == 3


@pytest.mark.parametrize(
    "answer",
    [
        Canned.error(503, "server_error"),  # no Retry-After: no hint of when
        Canned.error(503, "server_error", retry_after="3600"),  # past the deadline
        Canned.error(429, "rate_limited", retry_after="1"),  # too many tries of this user: theirs to wait
        Canned.error(401, "invalid_credentials"),
    ],
    ids=["503-without-retry-after", "503-retry-after-past-the-deadline", "429", "401"],
)
def test_other_refusals_fail_at_once(h: Harness, answer: Canned) -> None:
    manager = h.manager()
    h.live.ctl.answer("POST", LOGIN, answer)

    with pytest.raises(LoginFailed) as failed:
        h.login(manager)

    assert failed.value.status == answer.status
    assert h.live.ctl.count("POST", LOGIN) == 1
