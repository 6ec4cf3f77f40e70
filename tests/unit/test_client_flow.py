"""The client's waits, as generator steps on a frozen clock: backoff, ``Retry-After``, ``max_wait``, the
lost-answer window, and the bound on an application request's retries.

These are decisions; the real drivers only sleep for as long as a ``Sleep`` step says. Tests that prove the
I/O (real sockets, real locks, real faults) are in ``tests/inprocess`` and ``tests/e2e``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import pytest

from keyturn.client import RefreshUnavailable, _flow
from keyturn.client._flow import RetryPolicy
from keyturn.client._session import LOST_ANSWER_RETRY, LOST_ANSWER_WINDOW
from keyturn.client._steps import Answer, Reply, SendRequest, Sleep

from ._flows import NOW, MaxRandom, MinRandom, Scene, dropped, error, reply

OK = reply(200, {"ok": True})


# -- the refresh --------------------------------------------------------------------------------------


def test_backoff_between_refresh_attempts_grows_until_max_wait_runs_out() -> None:
    """With the token unusable the caller waits, retrying 0.5 s then 1 s apart (MaxRandom takes each
    ceiling); the next wait, 2 s, would pass ``max_wait`` (3 s), so it gives up: ``RefreshUnavailable``,
    the session intact."""
    scene = Scene(rng=MaxRandom(), max_wait=3.0)
    old = scene.sign_in()
    scene.clock.advance(1000)  # expired
    scene.answer(*[dropped(maybe_applied=False)] * 10)

    with pytest.raises(RefreshUnavailable):
        scene.run(_flow.access(scene.session))

    assert len(scene.calls()) == 3
    assert scene.sleeps() == [0.5, 1.0]
    assert scene.session.state == "degraded"
    assert scene.ended == []
    assert scene.tokens.refresh_token == old.refresh_token


def test_retry_after_is_honoured() -> None:
    """A service that says "come back in 30 s" does not see the client again before that: a still-valid
    token is used meanwhile, and a caller with an expired one is told at once rather than kept waiting."""
    scene = Scene(max_wait=5.0)
    old = scene.sign_in()
    scene.answer(error(scene.endpoints, 429, "rate_limited", retry_after="30"))
    scene.clock.advance(700)

    for _ in range(29):
        assert scene.run(_flow.access(scene.session)) == old.access_token
        scene.clock.advance(1)
    assert len(scene.calls()) == 1
    scene.clock.advance(1)
    assert scene.run(_flow.access(scene.session)) != old.access_token
    assert len(scene.calls()) == 2


def test_an_expired_token_and_a_long_retry_after_fail_at_once() -> None:
    """Waiting 30 s would pass ``max_wait`` (5 s): ``RefreshUnavailable`` now, without sleeping, and the
    next caller within the 30 s is told the same without a call."""
    scene = Scene(max_wait=5.0)
    scene.sign_in()
    scene.clock.advance(1000)
    scene.answer(error(scene.endpoints, 429, "rate_limited", retry_after="30"))

    with pytest.raises(RefreshUnavailable):
        scene.run(_flow.access(scene.session))
    scene.clock.advance(20)
    with pytest.raises(RefreshUnavailable):
        scene.run(_flow.access(scene.session))

    assert len(scene.calls()) == 1
    assert scene.sleeps() == []
    assert scene.ended == []


def test_a_lost_answer_is_retried_within_the_grace_period_then_backs_off_as_usual() -> None:
    """After an answer that may have been lost, retries come at most 2 s apart for 25 s (they must land
    in the service's grace period); after that window the usual backoff applies again."""
    scene = Scene(rng=MaxRandom(), max_wait=600.0)
    scene.sign_in()
    scene.clock.advance(1000)
    scene.answer(*[dropped(maybe_applied=True)] * 20)

    scene.run(_flow.access(scene.session))  # the 21st call gets a pair

    sleeps = scene.sleeps()
    elapsed = 0.0
    for wait in sleeps:
        if elapsed < LOST_ANSWER_WINDOW:
            assert wait <= LOST_ANSWER_RETRY
        elapsed += wait
    assert max(sleeps) > LOST_ANSWER_RETRY, "the backoff never grew again after the window"
    assert len({call.body["refresh_token"] for call in scene.calls()}) == 1, "not the same refresh token"


def test_consecutive_non_extending_refreshes_back_off_longer_each_time() -> None:
    """At the session's end every refresh gives the same expiry. A second such refresh in a row must wait
    longer than the first, or the client hammers the service with a refresh per application call."""
    scene = Scene(rng=MaxRandom())
    first = scene.sign_in()
    end = first.access_expires_at
    same_end = {"access_token": "x.e30.y", "refresh_token": "r", "expires_in": 0, "server_time": 0}

    def ends_at_the_same_time(_call: object) -> object:
        now = scene.clock.now()
        body = {**same_end, "expires_in": end - now, "server_time": now}
        return reply(200, body)

    scene.clock.advance(850)  # 50 s left: due
    scene.answer(ends_at_the_same_time)  # type: ignore[arg-type]
    scene.run(_flow.access(scene.session))
    first_wait = scene.session.retry_at - scene.clock.now()

    scene.clock.advance(40)  # 10 s left: due again, and past the first wait
    scene.answer(ends_at_the_same_time)  # type: ignore[arg-type]
    scene.run(_flow.access(scene.session))
    second_wait = scene.session.retry_at - scene.clock.now()

    assert len(scene.calls()) == 2
    assert first_wait == 0.5
    assert second_wait == 1.0, "the second non-extending refresh did not back off longer"


# -- an application's request ---------------------------------------------------------------------------


def _request(scene: Scene, method: str, answers: list[object], **policy: float) -> object:
    flow = _flow.request(
        scene.session,
        RetryPolicy(**policy),  # type: ignore[arg-type]
        method,
        retry_safe=False,
        rng=MinRandom(),
    )
    return scene.run(flow, answers)  # type: ignore[arg-type]


def test_an_idempotent_request_is_retried_through_dropped_connections() -> None:
    scene = Scene()
    scene.sign_in()
    answers = [dropped(), error(scene.endpoints, 503, None), dropped(), OK]

    assert _request(scene, "GET", list(answers)) == OK
    assert sum(isinstance(step, SendRequest) for step in scene.steps) == 4


def test_a_post_is_never_sent_twice_unasked() -> None:
    scene = Scene()
    scene.sign_in()
    lost = dropped()

    assert _request(scene, "POST", [lost]) is lost
    assert sum(isinstance(step, SendRequest) for step in scene.steps) == 1


def test_retries_stop_at_the_callers_number_of_tries() -> None:
    scene = Scene()
    scene.sign_in()
    busy = error(scene.endpoints, 503, None)

    assert _request(scene, "GET", [busy] * 3, retries=2) == busy
    assert sum(isinstance(step, SendRequest) for step in scene.steps) == 3


def test_retries_stop_at_the_callers_deadline() -> None:
    """``Retry-After: 4`` three times: the third wait would start the retry past the 10 s deadline."""
    scene = Scene()
    scene.sign_in()
    busy = error(scene.endpoints, 429, "rate_limited", retry_after="4")

    assert _request(scene, "GET", [busy] * 5, retries=10, deadline=10.0) == busy
    assert scene.sleeps() == [4.0, 4.0]


def test_a_retry_waits_the_backoff_and_uses_the_token_refreshed_meanwhile() -> None:
    """The wait is the client's backoff (full jitter: at most 0.5 s, then 1 s...), and a retry that comes
    after the token became due carries the refreshed one."""
    scene = Scene(rng=MaxRandom())
    first = scene.sign_in()
    scene.clock.advance(599.9)  # due in 0.1 s
    flow = _flow.request(scene.session, RetryPolicy(), "GET", retry_safe=False, rng=MaxRandom())

    scene.run(flow, [dropped(), OK])

    sends = scene.sent()
    assert scene.sleeps() == [0.5]
    assert sends[0] == first.access_token
    assert sends[1] == scene.tokens.access_token != first.access_token


# -- the background refresher ---------------------------------------------------------------------------


def test_the_background_flow_wakes_at_least_every_ceiling_and_refreshes_when_due() -> None:
    """Timers drift while a machine sleeps, so the refresher looks at least every ``ceiling`` seconds;
    it refreshes once the pair is due (600 s after issue), and goes on with the next pair."""
    scene = Scene()
    first = scene.sign_in()
    flow = _flow.background(scene.session, 60.0)
    answer: object = None
    while len(scene.calls()) < 2:
        step = flow.send(answer)
        scene.steps.append(step)
        answer = scene.do(step)
    flow.close()

    sleeps = scene.sleeps()
    assert sleeps[:10] == [60.0] * 10  # 600 s to go, a look every 60 s
    assert all(wait <= 60.0 for wait in sleeps)
    assert scene.clock.now() - NOW == pytest.approx(1200.0)  # the second pair was due 600 s after the first
    assert scene.tokens.access_token != first.access_token
    assert scene.session.refreshes == 2


def test_max_wait_holds_on_a_clock_that_stands_still() -> None:
    """The waits are counted as well as timed: with a clock that never moves (a frozen test clock, a
    clock set back), a caller still gives up once it has slept ``max_wait`` in all."""
    scene = Scene(rng=MaxRandom(), max_wait=3.0)
    scene.sign_in()
    scene.clock.advance(1000)
    scene.answer(*[dropped(maybe_applied=False)] * 10)
    flow = _flow.access(scene.session)

    def drive_without_moving_the_clock() -> None:
        answer: object = None
        for _ in range(100):
            step = flow.send(answer)
            scene.steps.append(step)
            answer = None if isinstance(step, Sleep) else scene.do(step)

    with pytest.raises(RefreshUnavailable):
        drive_without_moving_the_clock()
    assert sum(scene.sleeps()) <= 3.0
    assert len(scene.calls()) <= 4


def _late(scene: Scene, trip: float, refused: Answer) -> Callable[[int], Answer]:
    """Answers from a service that reads every request ``trip`` seconds late, after its token expired."""

    def answer_to(_: int) -> Answer:
        scene.clock.advance(trip)
        spent = scene.clock.now() + scene.tokens.clock_offset  # by this client's clock too
        scene.session.tokens = dataclasses.replace(scene.tokens, access_expires_at=spent)
        return refused

    return answer_to


def test_a_request_the_service_keeps_reaching_after_its_token_expired_is_sent_again_only_as_a_retry() -> None:
    """A busy service that reads every request after its token expired (by this client's clock too) gets it
    again with a new token after one refresh and, each one of the policy's retries, a few times more; then
    the 401 is the answer."""
    scene = Scene()
    scene.sign_in()
    flow = _flow.request(scene.session, RetryPolicy(), "GET", retry_safe=False, rng=MinRandom())
    refused = error(scene.endpoints, 401, "token_expired")

    result = scene.run(flow, _late(scene, 5, refused))
    sends = scene.sent()

    assert result is refused
    assert len(sends) == 2 + RetryPolicy().retries  # the first, after the refresh, and each retry
    assert len(scene.calls()) == 1 + RetryPolicy().retries  # a refresh before each sending again
    assert len(set(sends)) == len(sends)  # each time with a newer token
    assert scene.ended == []


def test_those_sendings_again_start_within_the_deadline() -> None:
    scene = Scene()
    scene.sign_in()
    flow = _flow.request(
        scene.session, RetryPolicy(retries=10, deadline=30), "GET", retry_safe=False, rng=MinRandom()
    )
    refused = error(scene.endpoints, 401, "token_expired")

    result = scene.run(flow, _late(scene, 20, refused))
    sends = scene.sent()

    assert result is refused
    assert len(sends) == 2  # at 0 s and, after the free refresh, at 20 s; the answer at 40 s is past 30 s


def test_a_resend_for_an_older_token_leaves_the_refresh_free_and_two_token_invalid_end_the_session() -> None:
    """With no retries at all: a 401 for an older token (another caller refreshed), then ``token_invalid``
    for the current one, refreshed, and ``token_invalid`` again: the session ends."""
    scene = Scene()
    scene.sign_in()
    flow = _flow.request(scene.session, RetryPolicy(retries=0), "GET", retry_safe=False, rng=MinRandom())
    invalid = error(scene.endpoints, 401, "token_invalid")

    def answer_to(n: int) -> Answer:
        if n == 1:  # another caller refreshed while this request was out
            now = scene.clock.now()
            scene.session.install(
                scene.endpoints.tokens(json.loads(scene.fresh_pair().content), None, now, now)
            )
            return error(scene.endpoints, 401, "token_expired")
        return invalid

    result = scene.run(flow, answer_to)
    sends = scene.sent()

    assert result is invalid
    assert len(sends) == 3
    assert scene.ended == ["token_invalid"]


# -- a request that cannot be sent again -----------------------------------------------------------------


def _unreplayable(scene: Scene, answers: object) -> object:
    flow = _flow.request(
        scene.session, RetryPolicy(), "GET", retry_safe=True, rng=MinRandom(), replayable=False
    )
    return scene.run(flow, answers)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [0, 429, 503])
def test_a_request_whose_body_cannot_be_sent_again_is_never_retried(status: int) -> None:
    """Its driver could not send it again as it was (a streamed body): the first answer is the one."""
    scene = Scene()
    scene.sign_in()
    first = dropped() if status == 0 else error(scene.endpoints, status, None)

    assert _unreplayable(scene, [first]) is first
    assert (len(scene.sent()), scene.sleeps()) == (1, [])


def test_its_401_token_expired_comes_back_after_the_refresh() -> None:
    """The refresh is made, so that the application's next request carries a token the service takes."""
    scene = Scene()
    first = scene.sign_in()
    expired = error(scene.endpoints, 401, "token_expired")

    assert _unreplayable(scene, [expired]) is expired
    assert (len(scene.sent()), len(scene.calls())) == (1, 1)
    assert scene.tokens.access_token != first.access_token
    assert scene.ended == []


def test_its_401_for_an_older_token_comes_back_as_it_is() -> None:
    scene = Scene()
    scene.sign_in()

    def answer_to(n: int) -> Answer:  # another caller refreshed while this request was out
        now = scene.clock.now()
        scene.session.install(scene.endpoints.tokens(json.loads(scene.fresh_pair().content), None, now, now))
        return error(scene.endpoints, 401, "token_expired")

    result = _unreplayable(scene, answer_to)

    assert isinstance(result, Reply)
    assert result.status == 401
    assert (len(scene.sent()), scene.calls()) == (1, [])
