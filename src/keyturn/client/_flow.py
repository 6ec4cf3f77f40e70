"""The client's decisions, without I/O: what an answer means, when to refresh, how long to wait, when the
session is over.

Two pure judgements read one answer each: :func:`judge_refresh` (the refresh endpoint's answer: ``store``,
``end`` or ``retry``) and :func:`judge_request` (an application request's answer: ``done``, ``refresh``,
``resend``, ``retry`` or ``end``); ``tests/scenarios/client_decisions.json`` lists both, and the browser
client is tested on the same table. The flows are generators, as httpx writes ``Auth.auth_flow``: they yield
the steps of ``_steps.py`` and receive what came of them, and the drivers (``_drive.py`` for the token
service, ``httpx_auth.py`` and ``requests_auth.py`` for the application's requests) only do the I/O and
the locking.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ..errors import LoginFailed, RefreshUnavailable, SessionEnded
from ._endpoints import Endpoints, backoff, retry_after
from ._session import Outcome, Session
from ._steps import Answer, Call, Exclusive, Flow, NoAnswer, Reply, SendRequest, Sleep
from ._tokens import Tokens, unverified_claims

__all__ = [
    "IDEMPOTENT",
    "RETRIED_STATUSES",
    "Decision",
    "RetryPolicy",
    "access",
    "asks_for_nonce",
    "background",
    "error_code",
    "give_up",
    "heard",
    "judge_refresh",
    "judge_request",
    "login",
    "logout",
    "obtain",
    "proves",
    "request",
    "settled",
    "start",
]

logger = logging.getLogger("keyturn.client")

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
"""Methods a client may send again when no answer came (RFC 9110, section 9.2.2)."""
RETRIED_STATUSES = frozenset({429, 502, 503, 504})
"""Answers that say "not now, try again": a 500 is the application's answer, and is returned."""

JUDGED = frozenset({0, 401} | RETRIED_STATUSES)
"""Statuses of an application's answer that may call for more than handing it over (0: no answer)."""

Decision = Literal["done", "refresh", "resend", "retry", "end"]


def settled(status: int) -> bool:
    """An answer with this status is the application's as it is, whatever the request (:func:`judge_request`
    says ``done``): the drivers hand it over without making the request's flow, the common case."""
    return status not in JUDGED


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How far an application request is retried: at most ``retries`` times after the first try, and no
    retry that would start more than ``deadline`` seconds after the first."""

    retries: int = 4
    deadline: float = 30.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.deadline < 0:
            raise ValueError("retries and deadline must be >= 0")


# -- the judgements ---------------------------------------------------------------------------------


def judge_refresh(
    endpoints: Endpoints, answer: Answer, previous: Tokens, sent: float, received: float
) -> Outcome:
    """What the refresh endpoint's ``answer`` decides; ``sent``/``received`` time the call (local clock)."""
    if isinstance(answer, NoAnswer):
        return Outcome("retry", reason=type(answer.error).__name__, maybe_applied=answer.maybe_applied)
    if 200 <= answer.status < 300:
        try:
            return Outcome("store", endpoints.tokens(answer.json(), previous, sent, received))
        except ValueError as exc:
            return Outcome("retry", reason=f"the refresh answer is unreadable ({exc})")
    code = endpoints.error_code(answer.json())
    if answer.status in (400, 401, 403) and code in endpoints.definitive:
        return Outcome("end", reason=code or "")
    return Outcome(
        "retry",
        reason=f"HTTP {answer.status} {code or ''}",
        retry_after=retry_after(answer.headers, received),
    )


def error_code(endpoints: Endpoints, reply: Reply) -> str | None:
    """The error code of a 401: from the body, else from ``WWW-Authenticate``'s ``error_description``."""
    code = endpoints.error_code(reply.json())
    if code is None:
        challenge = reply.headers.get("www-authenticate", "")
        marker = 'error_description="'
        if marker in challenge:
            code = challenge.split(marker, 1)[1].split(":", 1)[0].split('"', 1)[0]
    return code


def proves(session: Session, token: str) -> bool:
    """Whether an application request sends ``token`` as ``DPoP`` with a proof: a token bound to the
    client's key (``cnf``) while it has one (RFC 9449 section 7); else it goes as ``Bearer``."""
    return session.dpop is not None and "cnf" in unverified_claims(token)


def heard(session: Session, url: str, token: str, headers: Mapping[str, str]) -> None:
    """Keep the ``DPoP-Nonce`` of an answer (its ``headers``) to a request to ``url`` that carried
    ``token`` with a proof, for ``url``'s origin: whatever its status, since a server may hand out its
    next nonce on any answer, a 200 included (RFC 9449 sections 8.2 and 9), and the next proof then
    carries it instead of earning a ``use_dpop_nonce`` round trip. Every answer goes through here once:
    the flow of :func:`request` passes those it sees, and the drivers those they hand over without it
    (:func:`settled`)."""
    if session.dpop is None:
        return
    nonce = headers.get("dpop-nonce")
    if nonce and proves(session, token):
        session.dpop.saw(url, nonce)


def asks_for_nonce(session: Session, token: str, answer: Answer) -> bool:
    """Whether ``answer`` (to a request with ``token``) is a resource server's ``use_dpop_nonce`` (RFC 9449
    section 9: 401, ``WWW-Authenticate: DPoP error="use_dpop_nonce"``, and a ``DPoP-Nonce``), whose nonce
    :func:`heard` kept. (Not only a nonce new to the client: another request may have brought it while
    this one was out with none.)"""
    if not isinstance(answer, Reply) or answer.status != 401 or not proves(session, token):
        return False
    challenge = answer.headers.get("www-authenticate", "")
    asked = _NONCE_CHALLENGE.search(challenge) is not None or (
        error_code(session.endpoints, answer) == "use_dpop_nonce"
    )
    return bool(answer.headers.get("dpop-nonce")) and asked


_NONCE_CHALLENGE = re.compile(r'(?i)\bDPoP\b.*\berror\s*=\s*"?use_dpop_nonce\b')


def judge_request(
    endpoints: Endpoints,
    answer: Answer,
    *,
    sent: str,
    current: str | None,
    after_refresh: bool,
    may_retry: bool,
    expired: bool = False,
) -> Decision:
    """What an application request's ``answer`` decides.

    ``sent`` is the token it carried, ``current`` the client's token now, ``after_refresh`` whether this
    answer is to the retry after a refresh, ``may_retry`` whether the request may be sent again unasked,
    ``expired`` whether the current token was no longer usable (expired, or about to) by the client's
    estimate of the service's clock when the answer came: the service reached the request late, so its
    refusal as expired is no disagreement that would loop, and asks for another refresh.
    """
    if isinstance(answer, NoAnswer):
        return "retry" if may_retry else "done"
    status = answer.status
    if settled(status):
        return "done"
    if status == 401:
        if current is not None and current != sent:
            return "resend"  # another caller refreshed while this request was out
        code = error_code(endpoints, answer)
        if code in endpoints.rejected:
            return "end" if after_refresh else "refresh"  # a refresh tells whether the session lives
        if code in endpoints.expiring:
            return "done" if after_refresh and not expired else "refresh"  # never loop
        return "done"
    return "retry" if may_retry else "done"  # 429, 502, 503, 504


# -- calls to the token service ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Called:
    """A call's answer, and when (local clock) its last sending left and its answer came: the clock offset
    is measured at their midpoint, so they bracket the wire's round trip alone (the proof is made and any
    nonce round trip done before ``sent``)."""

    answer: Answer
    sent: float
    received: float


def call(
    session: Session, path: str, body: Mapping[str, str], headers: Mapping[str, str] | None = None
) -> Flow[Called]:
    """``POST path`` to the token service; with a DPoP key, with a proof, and sent once more with the
    service's nonce when it answers ``use_dpop_nonce`` (RFC 9449 section 8)."""
    prover = session.dpop
    for attempt in (1, 2):
        proof = {} if prover is None else prover.headers("POST", path)
        sent = session.clock.now()
        answer: Answer = yield Call(path, body, {**(headers or {}), **proof})
        called = Called(answer, sent, session.clock.now())
        if prover is None or not isinstance(answer, Reply):
            return called
        fresh = prover.saw(path, answer.headers.get("dpop-nonce"))
        if attempt == 1 and fresh and session.endpoints.error_code(answer.json()) == "use_dpop_nonce":
            continue
        return called
    raise AssertionError("unreachable")


# -- the access token -------------------------------------------------------------------------------


def access(session: Session) -> Flow[str]:
    """A usable access token, refreshed first if due (waiting only if the current one is unusable)."""
    tokens = session.require()
    if not session.is_due(tokens):
        return tokens.access_token
    if session.is_usable(tokens):
        if session.clock.now() >= session.retry_at:
            yield Exclusive(_locked(session, None), wait=False)  # refresh if no one else is; never wait
        current = session.require()
        if session.is_usable(current):
            return current.access_token
    return (yield from obtain(session, None))


def obtain(session: Session, rejected: str | None) -> Flow[str]:
    """A usable token other than ``rejected``: queue for the lock, refresh or wait, up to ``max_wait``."""
    max_wait = session.timing.max_wait
    deadline = session.clock.now() + max_wait
    slept = 0.0  # counted too: a clock that stands still (or jumps back) must not make the wait endless
    while True:
        ready = session.ready(rejected)
        if ready is not None:  # refreshed by whoever held the lock: no need to queue for it
            return ready
        found = yield Exclusive(_locked(session, rejected))
        if isinstance(found, str):
            return found
        if isinstance(found, float):
            slept += found
            if session.clock.now() + found > deadline or slept > max_wait:
                raise RefreshUnavailable(f"no usable access token after {max_wait:.0f}s of retries")
            yield Sleep(found)


def _locked(session: Session, rejected: str | None) -> Flow[str | float | None]:
    """With the lock held: a token to use, seconds to wait, or ``None`` after a refresh attempt."""
    step = session.next_step(rejected)
    if isinstance(step, Tokens):
        return step.access_token
    if isinstance(step, float):
        return step
    tokens = session.require()
    called = yield from call(
        session, session.endpoints.refresh, {session.endpoints.refresh_field: tokens.refresh_token}
    )
    session.apply(
        tokens, judge_refresh(session.endpoints, called.answer, tokens, called.sent, called.received)
    )
    return None


def background(session: Session, ceiling: float) -> Flow[None]:
    """Refresh ahead of time until the session ends, looking at least every ``ceiling`` seconds."""
    while session.ended is None:
        yield Sleep(session.background_delay(ceiling))
        tokens = session.tokens
        if tokens is not None and session.is_due(tokens):
            try:
                yield from access(session)
            except RefreshUnavailable:
                continue
            except SessionEnded:
                return


# -- logging in and out ------------------------------------------------------------------------------


LOGIN_TRIES = 3
"""How often a login the service answers 503 with ``Retry-After`` (its login queue is full) is sent."""
LOGIN_DEADLINE = 15.0
"""No login is tried again if its wait would end more than this many seconds after the first try."""


def login(session: Session, username: str, password: str) -> Flow[Tokens]:
    """Log in; a 503 with ``Retry-After`` is tried again after that wait, within ``LOGIN_TRIES`` and
    ``LOGIN_DEADLINE``; any other refusal (and the last 503) raises ``LoginFailed``."""
    endpoints = session.endpoints
    first = session.clock.now()
    for tries in range(1, LOGIN_TRIES + 1):
        called = yield from call(
            session, endpoints.login, {endpoints.username_field: username, endpoints.password_field: password}
        )
        answer, received = called.answer, called.received
        if isinstance(answer, NoAnswer):
            raise answer.error
        if answer.status == 200:
            break
        wait = retry_after(answer.headers, received) if answer.status == 503 else None
        if wait is None or tries == LOGIN_TRIES or received + wait > first + LOGIN_DEADLINE:
            raise LoginFailed(answer.status, endpoints.error_code(answer.json()))
        yield Sleep(wait)
    assert isinstance(answer, Reply)
    return (yield from start(session, endpoints.tokens(answer.json(), None, called.sent, received)))


def start(session: Session, tokens: Tokens) -> Flow[Tokens]:
    """Start the session on ``tokens``, with the lock held."""
    yield Exclusive(_begin(session, tokens))
    return tokens


def _begin(session: Session, tokens: Tokens) -> Flow[None]:
    session.begin(tokens)
    return
    yield  # a flow with no step


def logout(session: Session, everywhere: bool) -> Flow[None]:
    """End the session on the server (best effort) and here."""
    tokens = session.tokens
    path = session.endpoints.logout
    if tokens is not None and path is not None:
        # The service names the session by the access token if one is sent; an expired one would be
        # refused, and so would one bound to the DPoP key sent as Bearer (RFC 9449 section 7.2): then
        # the refresh token alone names it, with the call's proof of the key.
        bearer = {}
        if session.is_usable(tokens) and "cnf" not in unverified_claims(tokens.access_token):
            bearer = {"Authorization": f"Bearer {tokens.access_token}"}
        yield from _tell_server(session, path + ("-all" if everywhere else ""), tokens, bearer)
    session.end("logout")


def give_up(session: Session, reason: str) -> Flow[None]:
    """End the session here for ``reason`` where the server has not ended it (a resource server refused
    the token a refresh brought, say), then tell the server: one logout by the refresh token, best effort.
    The drivers run the end's callbacks before that call goes out, so it never delays them."""
    tokens = session.tokens
    if session.end(reason) and tokens is not None and session.endpoints.logout is not None:
        yield from _tell_server(session, session.endpoints.logout, tokens, {})


def _tell_server(session: Session, path: str, tokens: Tokens, headers: dict[str, str]) -> Flow[None]:
    """One logout call; its failure is logged and otherwise ignored (the session ends here in any case)."""
    answer = (
        yield from call(session, path, {session.endpoints.refresh_field: tokens.refresh_token}, headers)
    ).answer
    if isinstance(answer, NoAnswer):
        logger.warning(
            "logout: the server could not be reached (%s); ended here", type(answer.error).__name__
        )


# -- an application's request ------------------------------------------------------------------------


def request(
    session: Session,
    policy: RetryPolicy,
    method: str,
    *,
    retry_safe: bool,
    rng: random.Random,
    token: str | None = None,
    started: float | None = None,
    url: str | None = None,
    replayable: bool = True,
) -> Flow[Answer]:
    """One application request, from its first token to the answer the application gets.

    ``SendRequest(token)`` asks the driver to send it (again) with that token. A 401 that refuses the
    current token gets a refresh, one for an older token (another caller refreshed) a resend with the
    current one (:func:`judge_request` decides). The request's first refresh and its first resend are free;
    each one more (the service keeps reaching the request after its token expired: a busy service, a long
    queue) counts as one of ``policy.retries`` and is begun only while one is left and no later than
    ``policy.deadline`` seconds after ``started``. An answer that says "not now" (or none at all) is
    retried with backoff, each retry one of the same ``policy.retries`` and none starting past the
    deadline, if the request may be repeated: an idempotent method, or one the caller marked safe.
    ``token`` and ``started``: the token a driver first sent the request with, and when (the drivers send
    it first and make the flow only for an answer that is not :func:`settled`). ``url``: where the request
    goes; a resource server there that answers ``use_dpop_nonce`` with a new nonce gets the request once
    more, free, its proof carrying that nonce (:func:`asks_for_nonce`; RFC 9449 section 9).
    ``replayable``: whether the driver can send the request again as it was (its body bytes, or a file it
    rewinds). A request that cannot (a body streamed from a generator, a file that cannot be rewound) is
    sent once: its answer goes to the application as it came, a 401 after what it calls for here (the
    nonce kept, the refresh made), so that the application's next request goes through.
    """
    may_retry = replayable and (retry_safe or method.upper() in IDEMPOTENT)
    if token is None:
        token = session.ready(None) or (yield from access(session))
    if started is None:
        started = session.clock.now()
    refreshed = resent = nonce_sent = False
    retries = 0

    def within(retries: int) -> bool:
        """Another retry may start: fewer than ``policy.retries`` so far, and inside ``policy.deadline``."""
        return retries < policy.retries and session.clock.now() <= started + policy.deadline

    while True:
        answer: Answer = yield SendRequest(token)
        if url is not None and isinstance(answer, Reply):
            heard(session, url, token, answer.headers)
        if not nonce_sent and url is not None and asks_for_nonce(session, token, answer):
            if not replayable:
                return answer  # its nonce is kept: the application's next request carries it
            nonce_sent = True  # once: a server that asks again for every proof gets its 401 handed over
            continue
        current = session.tokens
        decision = judge_request(
            session.endpoints,
            answer,
            sent=token,
            current=None if current is None else current.access_token,
            after_refresh=refreshed,
            may_retry=may_retry,
            expired=current is not None and not session.is_usable(current),
        )
        if decision == "done":
            return answer
        if not replayable and decision in ("refresh", "resend"):
            if decision == "refresh":  # the 401 goes back; the application's next request gets through
                yield from obtain(session, token)
            return answer
        # The first refresh and the first resend are free; each one more (the service keeps reaching the
        # request after its token expired: a busy service, a long queue) is one of its retries.
        first = not refreshed if decision == "refresh" else not resent
        if decision in ("refresh", "resend") and (first or within(retries)):
            if not first:
                retries += 1
            if decision == "refresh":
                refreshed = True
                token = yield from obtain(session, token)
            else:
                resent = True
                token = yield from access(session)
        elif decision == "retry" and retries < policy.retries:
            hint = retry_after(answer.headers, session.clock.now()) if isinstance(answer, Reply) else None
            wait = backoff(retries + 1, rng, hint)
            if session.clock.now() + wait > started + policy.deadline:
                return answer
            retries += 1
            yield Sleep(wait)
            token = session.ready(None) or (yield from access(session))
        else:
            if decision == "end" and isinstance(answer, Reply):
                yield from give_up(session, error_code(session.endpoints, answer) or "token_invalid")
            return answer
