"""Driving the client's flows without a server: answers from a script, sleeps that move a frozen clock.

:class:`Scene` holds one session on a :class:`~keyturn.clock.FrozenClock` and a memory token store. Its
:meth:`Scene.run` does a flow's steps the way the real drivers do (an ``Exclusive`` runs its inner flow; a
``Sleep`` moves the clock instead of sleeping) and answers each call to the token service with the next
answer of ``script`` (or a fresh pair when the script is empty) and each sending of the application's
request from a list or a function (:class:`Sendings`); every step is recorded in ``steps``.
"""

from __future__ import annotations

import base64
import json
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from keyturn.client import KEYTURN, Endpoints, MemoryTokenStore, Tokens
from keyturn.client._session import Callbacks, Session, Timing
from keyturn.client._steps import BUSY, Answer, Call, Exclusive, Flow, NoAnswer, Reply, SendRequest, Sleep
from keyturn.clock import FrozenClock

T = TypeVar("T")

NOW = 1_800_000_000.0
LIFETIME = 900.0


class MaxRandom(random.Random):
    """``uniform`` always gives the top of the range: the longest backoff."""

    def uniform(self, a: float, b: float) -> float:
        return b


class MinRandom(random.Random):
    """``uniform`` always gives the bottom of the range: no jitter, no backoff wait."""

    def uniform(self, a: float, b: float) -> float:
        return a


def jwt(claims: dict[str, Any]) -> str:
    """A token-shaped string with these claims (unsigned: the client reads claims only to schedule)."""
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJub25lIn0.{payload}.sig"


def pair_body(endpoints: Endpoints, now: float, n: int, lifetime: float = LIFETIME) -> dict[str, Any]:
    """A token response of ``endpoints``' shape, the ``n``-th pair: issued at ``now``."""
    access = jwt({"iat": now, "exp": now + lifetime, "n": n})
    if endpoints is KEYTURN:
        return {
            "access_token": access,
            "refresh_token": f"refresh-{n}",
            "expires_in": lifetime,
            "server_time": now,
            "session_id": "s1",
        }
    return {endpoints.access_response_field: access, endpoints.refresh_response_field: f"refresh-{n}"}


def reply(status: int, body: object = None, **headers: str) -> Reply:
    content = b"" if body is None else json.dumps(body).encode()
    return Reply(status, {k.replace("_", "-"): v for k, v in headers.items()}, content)


def error(endpoints: Endpoints, status: int, code: str | None, **headers: str) -> Reply:
    """An error answer with ``code`` in ``endpoints``' error field (no body without a code)."""
    return reply(status, None if code is None else {endpoints.error_field: code}, **headers)


def dropped(maybe_applied: bool = True) -> NoAnswer:
    return NoAnswer(httpx.ReadError("dropped"), maybe_applied=maybe_applied)


class Sendings:
    """Answers to a flow's sendings of its request (``SendRequest``): from a list, in order, or
    ``answer_to(n)`` for the ``n``-th sending (from 1)."""

    def __init__(self, answers: Iterable[Answer] | Callable[[int], Answer] = ()) -> None:
        self.sent = 0
        if callable(answers):
            self.answer_to = answers
        else:
            pending = deque(answers)

            def next_answer(n: int) -> Answer:
                if not pending:
                    raise AssertionError(f"the flow sent its request once more than the test expected ({n})")
                return pending.popleft()

            self.answer_to = next_answer

    def answer(self) -> Answer:
        self.sent += 1
        return self.answer_to(self.sent)


@dataclass
class Scene:
    endpoints: Endpoints = KEYTURN
    rng: random.Random = field(default_factory=MinRandom)
    max_wait: float = 60.0
    clock: FrozenClock = field(default_factory=lambda: FrozenClock(NOW))
    script: deque[Answer | Callable[[Call], Answer]] = field(default_factory=deque)
    steps: list[Call | SendRequest | Sleep | Exclusive] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    issued: int = 0

    def __post_init__(self) -> None:
        timing = Timing(refresh_margin=300.0, jitter=0.0, max_wait=self.max_wait, rng=self.rng)
        hooks = Callbacks(on_session_ended=self.ended.append)
        self.session = Session(self.endpoints, MemoryTokenStore(), self.clock, timing, hooks)

    # -- the pair --------------------------------------------------------------------------------------

    def fresh_pair(self) -> Reply:
        self.issued += 1
        return reply(200, pair_body(self.endpoints, self.clock.now(), self.issued))

    def sign_in(self) -> Tokens:
        """A session with a pair issued now (due for a refresh in 600 s, expired in 900 s)."""
        self.issued += 1
        tokens = self.endpoints.tokens(
            pair_body(self.endpoints, self.clock.now(), self.issued), None, NOW, NOW
        )
        self.session.begin(tokens)
        self.session.fire()
        return tokens

    @property
    def tokens(self) -> Tokens:
        assert self.session.tokens is not None
        return self.session.tokens

    # -- driving ---------------------------------------------------------------------------------------

    def answer(self, *answers: Answer | Callable[[Call], Answer]) -> None:
        self.script.extend(answers)

    def calls(self) -> list[Call]:
        return [step for step in self.steps if isinstance(step, Call)]

    def sleeps(self) -> list[float]:
        return [step.seconds for step in self.steps if isinstance(step, Sleep)]

    def sent(self) -> list[str]:
        """The tokens the application's request was sent with, in order."""
        return [step.token for step in self.steps if isinstance(step, SendRequest)]

    def run(self, flow: Flow[T], requests: Iterable[Answer] | Callable[[int], Answer] = ()) -> T:
        """Drive ``flow`` to its end; ``requests`` answer its ``SendRequest`` steps: a list, in order, or a
        function given the sending's number (from 1)."""
        return self._run(flow, Sendings(requests))

    def _run(self, flow: Flow[T], pending: Sendings) -> T:
        answer: Any = None
        while True:
            try:
                step = flow.send(answer)
            except StopIteration as stop:
                self.session.fire()
                result: T = stop.value
                return result
            self.steps.append(step)
            answer = self.do(step, pending)

    def do(self, step: Call | SendRequest | Sleep | Exclusive, pending: Sendings | None = None) -> Any:
        """Do one step; ``pending`` answers a ``SendRequest`` (none expected without it)."""
        if pending is None:
            pending = Sendings()
        if isinstance(step, Exclusive):
            result = self._run(step.flow, pending)
            return result
        if isinstance(step, Sleep):
            self.clock.advance(step.seconds)
            return None
        if isinstance(step, Call):
            if not self.script:
                return self.fresh_pair()
            scripted = self.script.popleft()
            return scripted(step) if callable(scripted) else scripted
        return pending.answer()


__all__ = ["BUSY", "MaxRandom", "MinRandom", "Scene", "dropped", "error", "jwt", "pair_body", "reply"]
