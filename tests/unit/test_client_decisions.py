"""Every row of ``tests/scenarios/client_decisions.json`` through the Python client's own flows, no server.

The browser client's tests read the same table, so the two clients cannot disagree on what an answer
means. Each row is an answer; the flow is driven up to it and the decision read from what the flow does
next: a refresh answer is stored, ends the session, or is retried later (after ``wait`` seconds if the
row says); an application request's answer is handed to the application (``done``), or costs a refresh
(the flow queues for the refresh lock), a resend with the current token, a retry after a wait, or the
session (``end``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from keyturn.client import KEYTURN, SIMPLEJWT, Endpoints, SessionEnded, _flow
from keyturn.client._flow import RetryPolicy
from keyturn.client._steps import Answer, Call, Exclusive, Flow, SendRequest, Sleep

from ._flows import MinRandom, Scene, dropped, error

TABLE = json.loads((Path(__file__).resolve().parents[1] / "scenarios/client_decisions.json").read_text())
SHAPES: dict[str, Endpoints] = {"keyturn": KEYTURN, "simplejwt": SIMPLEJWT}


def _answer(row: dict[str, Any], endpoints: Endpoints) -> Answer:
    if row["status"] == 0:
        return dropped()
    headers = {"retry_after": str(row["retry_after"])} if "retry_after" in row else {}
    return error(endpoints, row["status"], row["code"], **headers)


@pytest.mark.parametrize("row", TABLE["refresh"], ids=[row["name"] for row in TABLE["refresh"]])
def test_the_refresh_endpoints_answer_decides_as_the_table_says(row: dict[str, Any]) -> None:
    endpoints = SHAPES[row["shape"]]
    scene = Scene(endpoints)
    old = scene.sign_in()
    scene.clock.advance(700)  # due, still usable for 200 s
    if row["status"] != 200:
        scene.answer(_answer(row, endpoints))

    token: str | None = None
    raised: str | None = None
    try:
        token = scene.run(_flow.access(scene.session))
    except SessionEnded as ended:
        raised = ended.reason

    assert len(scene.calls()) == 1
    session = scene.session
    if session.ended is not None:
        decision = "end"
        assert session.ended == raised == row["code"]
        assert scene.ended == [row["code"]]
    elif scene.tokens.refresh_token != old.refresh_token:
        decision = "store"
        assert token == scene.tokens.access_token != old.access_token
    else:
        decision = "retry"
        assert token == old.access_token, "a still-valid token was not used while retrying"
        assert session.state == "degraded"
        if "wait" in row:
            assert session.retry_at - scene.clock.now() == row["wait"]
    assert decision == row["decision"]


def _until_sent(scene: Scene, flow: Flow[Answer], answer: Answer | None) -> SendRequest:
    """Answer the flow and do its steps until it sends the request again."""
    while True:
        step = flow.send(answer)
        if isinstance(step, SendRequest):
            return step
        answer = scene.do(step)


def _decision(scene: Scene, flow: Flow[Answer], answer: Answer) -> tuple[str, object]:
    """What the flow does with ``answer``, read from its next step."""
    try:
        step = flow.send(answer)
    except StopIteration:
        scene.session.fire()
        return ("end" if scene.session.ended is not None else "done"), None
    if isinstance(step, Sleep):
        return "retry", step.seconds
    if isinstance(step, SendRequest):
        return "resend", step.token
    if isinstance(step, Call) and step.path == scene.endpoints.logout:
        # the client gave the session up: ended here first, then the server is told (issue 19)
        assert scene.session.ended is not None
        assert step.body[scene.endpoints.refresh_field]  # named by the refresh token
        assert not step.headers
        scene.session.fire()
        return "end", None
    assert isinstance(step, Exclusive), step
    return "refresh", None


@pytest.mark.parametrize("row", TABLE["request"], ids=[row["name"] for row in TABLE["request"]])
def test_an_application_requests_answer_decides_as_the_table_says(row: dict[str, Any]) -> None:
    endpoints = SHAPES[row["shape"]]
    scene = Scene(endpoints)
    first = scene.sign_in()
    flow = _flow.request(
        scene.session, RetryPolicy(), row["method"], retry_safe=row.get("retry_safe", False), rng=MinRandom()
    )
    sent = _until_sent(scene, flow, None)
    assert sent.token == first.access_token
    answer = _answer(row, endpoints)
    scene.clock.advance(1)
    if row["after_refresh"]:
        sent = _until_sent(scene, flow, answer)  # the same refusal first costs one refresh
        assert len(scene.calls()) == 1
        assert sent.token == scene.tokens.access_token != first.access_token
    if row["sent"] == "expired":  # the service reached it after the token expired, by this clock too
        expired = scene.clock.now() + scene.tokens.clock_offset  # a short-lived token, its life spent
        scene.session.tokens = dataclasses.replace(scene.tokens, access_expires_at=expired)
    if row["sent"] == "older":  # another caller refreshed while the request was out
        now = scene.clock.now()
        scene.session.install(scene.endpoints.tokens(json.loads(scene.fresh_pair().content), None, now, now))

    decision, detail = _decision(scene, flow, answer)

    assert decision == row["decision"]
    if decision == "retry":
        assert detail == row.get("wait", 0.0)
    if decision == "resend":
        assert detail == scene.tokens.access_token != sent.token
    if decision == "end":
        assert scene.ended == [row["code"]]
    else:
        assert scene.ended == []


def test_the_table_covers_every_decision() -> None:
    """A table that never says ``end`` or ``retry`` would leave those paths untested in both clients."""
    assert {row["decision"] for row in TABLE["refresh"]} == {"store", "end", "retry"}
    assert {row["decision"] for row in TABLE["request"]} == {"done", "refresh", "resend", "retry", "end"}


@pytest.mark.parametrize("shape", ["keyturn", "simplejwt"])
def test_an_answer_the_drivers_hand_over_unjudged_is_one_the_flow_would_hand_over(shape: str) -> None:
    """The drivers skip the flow for a ``settled`` status (the common request); that shortcut must never
    hide a decision: for each such status, with any code, method or history, the flow says ``done``."""
    endpoints = SHAPES[shape]
    codes = [None, "token_expired", "token_invalid", "token_revoked", "token_not_valid", "rate_limited"]
    for status in range(100, 600):
        if not _flow.settled(status):
            continue
        for code in codes:
            for may_retry in (False, True):
                decision = _flow.judge_request(
                    endpoints,
                    error(endpoints, status, code),
                    sent="a",
                    current="a",
                    after_refresh=False,
                    may_retry=may_retry,
                )
                assert decision == "done", (status, code, may_retry)
    assert not any(_flow.settled(row["status"]) for row in TABLE["request"] if row["decision"] != "done")


@pytest.mark.parametrize(
    "challenge",
    [
        'Bearer realm="keyturn", error="invalid_token", error_description="token_expired: x", '
        'DPoP realm="keyturn", algs="ES256 EdDSA"',
        'DPoP realm="keyturn", error="invalid_token", error_description="token_expired: x", '
        'algs="ES256 EdDSA"',
    ],
    ids=["bearer-refusal", "dpop-refusal"],
)
def test_the_code_of_a_401_without_a_body_is_read_from_either_challenge(challenge: str) -> None:
    """A token presented as DPoP is refused in the ``DPoP`` challenge alone (RFC 9449 section 7.1): the
    client reads the code there as it does from ``Bearer``'s."""
    answer = error(KEYTURN, 401, None, **{"www-authenticate": challenge})
    assert _flow.error_code(KEYTURN, answer) == "token_expired"
