"""What a client knows of its session, and the decisions on it that need no I/O.

The pair and its refresh schedule, the failures so far and when the next attempt may be made, whether the
session has ended; what to do next with the lock held (use a pair, refresh, wait); what an outcome of a
refresh changes. Every time is read from the injected clock (epoch seconds), so the tests move it; the only
effects are the token store's ``load``/``save``/``clear`` and the callbacks, queued while the lock is held
and fired by the drivers after it.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ..errors import SessionEnded
from ..typing import Clock
from ._endpoints import Endpoints, backoff
from ._tokens import Tokens, TokenStore
from .dpop import Prover

__all__ = [
    "LOST_ANSWER_RETRY",
    "LOST_ANSWER_WINDOW",
    "USABLE_MARGIN",
    "Callbacks",
    "Hooks",
    "Outcome",
    "Session",
    "State",
]

logger = logging.getLogger("keyturn.client")

State = Literal["signed_out", "active", "degraded", "ended"]

USABLE_MARGIN = 1.0
"""An access token this close to its expiry (server time, seconds) is no longer worth sending while a
refresh is due: callers wait for the refresh instead (with a tiny ``refresh_margin`` it is never due
that early, and such a token is sent; a 401 ``token_expired`` is then retried once)."""
LOST_ANSWER_WINDOW = 25.0
"""After a refresh whose answer may have been lost (it may have rotated the pair on the server), retries
come at most ``LOST_ANSWER_RETRY`` seconds apart for this long: they must land inside the service's grace
period (30 s by default), where the same refresh token still gets the same successor; later it would be
taken for reuse and end the session."""
LOST_ANSWER_RETRY = 2.0


class Hooks(Protocol):
    """Where the application's callbacks are read from when they are due (the ``TokenManager``)."""

    on_session_ended: Callable[[str], object] | None
    on_refreshed: Callable[[Tokens], object] | None
    on_state: Callable[[State], object] | None


@dataclass
class Callbacks:
    """:class:`Hooks` as a plain value."""

    on_session_ended: Callable[[str], object] | None = None
    on_refreshed: Callable[[Tokens], object] | None = None
    on_state: Callable[[State], object] | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an answer of the refresh endpoint decides: ``store`` a new pair, ``end`` the session, or
    ``retry`` later (after ``retry_after`` seconds if the server said)."""

    decision: Literal["store", "end", "retry"]
    tokens: Tokens | None = None
    reason: str = ""
    """The definitive code (``end``) or what went wrong (``retry``)."""
    retry_after: float | None = None
    maybe_applied: bool = False
    """No answer came, but the server may have rotated the pair."""


@dataclass(frozen=True, slots=True)
class Timing:
    """When a pair is due and how waits are drawn: ``refresh_margin`` (capped at a third of the token's
    lifetime) with up to ``jitter`` of it added, ``rng`` for the jitter and the backoff, and ``max_wait``, how
    long a caller without a usable token waits for a refresh."""

    refresh_margin: float = 300.0
    jitter: float = 0.1
    max_wait: float = 60.0
    rng: random.Random = field(default_factory=random.Random)


class Session:
    """One session's state, shared by every thread and task of a :class:`~keyturn.client.TokenManager`."""

    def __init__(
        self,
        endpoints: Endpoints,
        store: TokenStore,
        clock: Clock,
        timing: Timing,
        hooks: Hooks | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.store = store
        self.clock = clock
        self.timing = timing
        self.hooks: Hooks = hooks or Callbacks()
        self._callbacks_lock = threading.Lock()
        self._callbacks: list[Callable[[], object]] = []
        self.tokens = store.load()
        self.refresh_at = self.schedule(self.tokens)
        self.failures = 0
        self.retry_at = 0.0
        """When (local clock) the next refresh attempt may be made after a temporary failure."""
        self.lost_since: float | None = None
        """When (local clock) a refresh's answer was first lost, while that is unresolved."""
        self.ended: str | None = None
        self.state: State = "active" if self.tokens else "signed_out"
        self.refreshes = 0
        self.dpop: Prover | None = None
        """Signs a DPoP proof for each call to the token service (RFC 9449), when the client has a key."""

    # -- reading the pair ----------------------------------------------------------------------------

    def schedule(self, tokens: Tokens | None) -> float:
        """When, in server time, ``tokens`` are due for a refresh."""
        if tokens is None:
            return float("inf")
        timing = self.timing
        margin = min(timing.refresh_margin, tokens.lifetime / 3)
        return tokens.access_expires_at - margin * (1 + timing.rng.uniform(0, timing.jitter))

    def is_due(self, tokens: Tokens) -> bool:
        return self.clock.now() + tokens.clock_offset >= self.refresh_at or tokens is not self.tokens

    def is_usable(self, tokens: Tokens) -> bool:
        return self.clock.now() + tokens.clock_offset < tokens.access_expires_at - USABLE_MARGIN

    def ready(self, rejected: str | None) -> str | None:
        """A current token that needs no refresh, read without the lock (or None: take the lock)."""
        tokens = self.tokens
        if tokens is None or self.ended is not None or tokens.access_token == rejected:
            return None
        now = self.clock.now() + tokens.clock_offset  # server time
        if (
            now >= self.refresh_at
            or now >= tokens.access_expires_at - USABLE_MARGIN
            or (tokens.refresh_expires_at is not None and now > tokens.refresh_expires_at)
        ):
            return None
        return tokens.access_token

    def require(self) -> Tokens:
        """The pair, or ``SessionEnded`` (a refresh token past its expiry ends the session here)."""
        tokens = self.tokens
        if self.ended is not None:
            raise SessionEnded(self.ended)
        if tokens is None:
            raise SessionEnded("signed_out")
        expires = tokens.refresh_expires_at
        if expires is not None and self.clock.now() + tokens.clock_offset > expires:
            self.end("refresh_token_expired")
            raise SessionEnded("refresh_token_expired")
        return tokens

    def next_step(self, rejected: str | None) -> Tokens | float | None:
        """With the lock held: a pair to use, ``None`` to refresh now, or so many seconds to wait.

        The store is read again first: another manager on it (another run of the program, say) may
        have refreshed, and its refresh token is the one that counts now.
        """
        self.adopt_stored()
        current = self.require()
        good = self.is_usable(current) and current.access_token != rejected
        if good and not self.is_due(current):
            return current
        now = self.clock.now()
        if now >= self.retry_at:
            return None
        if good:
            return current  # due, but backing off: a valid token keeps being used
        return self.retry_at - now

    def background_delay(self, ceiling: float) -> float:
        """Seconds until the background refresher should look again."""
        tokens = self.tokens
        if tokens is None:
            return 1.0
        now = self.clock.now()
        until_due = self.refresh_at - (now + tokens.clock_offset)
        return min(max(until_due, self.retry_at - now, 0.05), ceiling)

    # -- changing it (with the lock held) ------------------------------------------------------------

    def apply(self, old: Tokens, outcome: Outcome) -> None:
        """Take in the outcome of a refresh of ``old``."""
        if outcome.decision == "end":
            self.end(outcome.reason)
            return
        if outcome.decision == "retry" or outcome.tokens is None:
            self.failed(outcome)
            return
        new = outcome.tokens
        failures = self.failures
        self.install(new)
        self.refreshes += 1
        if new.access_expires_at <= old.access_expires_at:
            # A refresh that did not move the expiry (the session's end is near) must not be repeated at once.
            self.failures = failures
            self.failed(Outcome("retry", reason="the refresh did not extend the access token"))

    def adopt_stored(self) -> None:
        if self.ended is not None:
            return
        stored = self.store.load()
        current = self.tokens
        if stored is not None and (current is None or stored.refresh_token != current.refresh_token):
            self.tokens = stored
            self.refresh_at = self.schedule(stored)

    def install(self, tokens: Tokens) -> None:
        self.store.save(tokens)
        self.tokens = tokens
        self.refresh_at = self.schedule(tokens)
        self.failures = 0
        self.retry_at = 0.0
        self.lost_since = None
        self.set_state("active")
        if self.hooks.on_refreshed is not None:
            hook = self.hooks.on_refreshed
            self._queue(lambda: hook(tokens))

    def failed(self, outcome: Outcome) -> None:
        self.failures += 1
        now = self.clock.now()
        if outcome.maybe_applied and self.lost_since is None:
            self.lost_since = now
        wait = backoff(self.failures, self.timing.rng, outcome.retry_after)
        if self.lost_since is not None and now - self.lost_since < LOST_ANSWER_WINDOW:
            wait = min(wait, LOST_ANSWER_RETRY)  # stay inside the grace period (see LOST_ANSWER_WINDOW)
        self.retry_at = now + wait
        logger.info("refresh failed (%s); next attempt in %.1fs", outcome.reason, wait)
        self.set_state("degraded")

    def end(self, reason: str) -> bool:
        """End the session for ``reason``; ``False`` if it had ended already (nothing is done again)."""
        with self._callbacks_lock:
            if self.ended is not None:
                return False
            self.ended = reason
        self.tokens = None
        self.store.clear()
        self.set_state("ended")
        if self.hooks.on_session_ended is not None:
            hook = self.hooks.on_session_ended
            self._queue(lambda: hook(reason))
        return True

    def begin(self, tokens: Tokens) -> None:
        with self._callbacks_lock:
            self.ended = None
        self.install(tokens)

    def set_state(self, state: State) -> None:
        if state != self.state:
            self.state = state
            if self.hooks.on_state is not None:
                hook = self.hooks.on_state
                self._queue(lambda: hook(state))

    # -- callbacks -----------------------------------------------------------------------------------

    def _queue(self, callback: Callable[[], object]) -> None:
        with self._callbacks_lock:
            self._callbacks.append(callback)

    def fire(self) -> None:
        """Run the callbacks queued while the lock was held, outside it."""
        if not self._callbacks:
            return
        with self._callbacks_lock:
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # an application's callback must not break the session
                logger.exception("a TokenManager callback failed")
