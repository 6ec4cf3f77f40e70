"""The public keys a verifier holds, and when it fetches them again (on the verifier's I/O thread).

Keys come from a :class:`~keyturn.middleware.KeySource` (the token service's JWKS, or a shared store):
fetched at start, again in the background when the JWKS's ``Cache-Control`` runs out, and on demand for a
token naming an unknown ``kid``, but such fetches start at most once per ``refetch_interval`` (paced by a
monotonic timer), so a flood of made-up ids cannot hammer the token service. A ``kid`` that a fetch
begun after its token arrived lacked is forged, and refused at once for a while.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from .._jws import split
from .._reload import KeyReloader
from ..keys import PublicKey, parse_jwks
from ..typing import Clock
from ._sources import FETCH_ERRORS, Keys, KeySource

__all__ = ["HeldKeys"]

logger = logging.getLogger("keyturn.middleware")

DEFAULT_KEY_TTL = 300.0
"""How long a JWKS is kept when its response says nothing (seconds)."""
KEY_TTL_BOUNDS = (30.0, 86_400.0)
"""A JWKS is fetched again in the background no sooner and no later than this (seconds)."""
RETRY_AFTER_FAILURE = 5.0
MAX_MISSING = 4096
"""How many key ids proved forged are remembered (and refused without a fetch)..."""
MISSING_FOR = 30.0
"""...and for how long (seconds): long enough to spare the token service, short enough to heal if a
JWKS answer was ever wrong (a stale cache between us and the service, say)."""


class HeldKeys:
    """``keys``: the verifying keys by id, replaced whole by each fetch (request threads read it without a
    lock). ``on_withdrawn`` is called when a fetch no longer lists a key held before."""

    def __init__(
        self,
        source: KeySource,
        *,
        clock: Clock,
        timer: Clock,
        timeout: float,
        refetch_interval: float,
        leeway: float,
        on_withdrawn: Callable[[], None],
    ) -> None:
        self.keys: dict[str, PublicKey] = {}
        self.fetches = 0
        self._source = source
        self._clock = clock
        self._timer = timer
        self._timeout = timeout
        self._refetch_interval = refetch_interval
        self._leeway = leeway
        self._on_withdrawn = on_withdrawn
        self._due = 0.0
        self._failing = False
        self._reloader: KeyReloader[tuple[Keys, float]] | None = None
        self._fetched_from: float | None = None  # when the last successful fetch began (clock time)
        self._missing: OrderedDict[str, float] = OrderedDict()  # key ids a fetch lacked -> until when

    def issued_before_last_fetch(self, token: str) -> bool:
        """Whether the last successful key fetch began after ``token`` was issued (its unverified ``iat``).

        If so, a genuine key would have been listed (the service's JWKS is read from the store, where
        a key is before anything signs with it), so a token naming a key that fetch lacked is forged;
        the leeway covers the clocks of the two machines. Otherwise the key may be newer than the fetch,
        and the caller is told to retry (503).
        """
        iat = split(token).claims().get("iat")
        if not isinstance(iat, int | float) or isinstance(iat, bool) or self._fetched_from is None:
            return False
        fetched_from = min(self._fetched_from, self._clock.now())  # a wall clock stepped back
        return iat + 1 + self._leeway <= fetched_from  # iat is in whole seconds

    # -- on the I/O thread ---------------------------------------------------------------------

    async def find(self, kid: str) -> bool | BaseException | None:
        """Whether ``kid`` is known after the fetch under way or one begun now: True; False if a fetch
        begun after the call lacked it; None if no such fetch was allowed (one began too recently); the
        error if the fetch failed."""
        assert self._reloader is not None
        if kid in self.keys:  # fetched for another request meanwhile
            return True
        if self._missing.get(kid, 0.0) > self._timer.now():
            return False
        arrived = self._timer.now()
        try:
            started = await self._reloader.fetch_now()
        except FETCH_ERRORS as exc:  # the caller turns a failed fetch into a retryable 503
            return exc
        if kid in self.keys:
            return True
        if started is None or started < arrived:
            return None
        # A fetch begun after the token arrived lacked its key: forged.
        self._missing[kid] = self._timer.now() + MISSING_FOR
        while len(self._missing) > MAX_MISSING:
            self._missing.popitem(last=False)
        return False

    def begin(self) -> None:
        """A new start: fetches are paced afresh (first thing on the verifier's new I/O thread)."""
        self._reloader = KeyReloader(
            self._fetch, self._timer, self._install, min_interval=self._refetch_interval
        )

    async def first(self) -> None:
        """The first fetch (a failure is logged; the background task and unknown kids retry)."""
        assert self._reloader is not None
        try:
            await self._reloader.reload()
        except FETCH_ERRORS as exc:
            self._failed(exc)

    async def keep_fresh(self) -> None:
        """Fetch again whenever the keys are due, for good."""
        assert self._reloader is not None
        while True:
            delay = self._due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                continue  # a fetch for an unknown kid may have moved the due time
            try:
                await self._reloader.reload()
            except FETCH_ERRORS as exc:  # retried after a pause; the keys held stay in force
                self._failed(exc)
            except Exception as exc:  # a bug must not stop the refreshes for good: logged, retried
                logger.exception("verifier: key refresh failed unexpectedly")
                self._failed(exc)

    def stop(self) -> None:
        if self._reloader is not None:
            self._reloader.cancel()

    async def close(self) -> None:
        await self._source.close()

    async def _fetch(self) -> tuple[Keys, float]:
        self.fetches += 1
        started = self._clock.now()
        return await asyncio.wait_for(self._source.fetch(), self._timeout), started

    def _install(self, fetch: tuple[Keys, float]) -> None:
        fetched, self._fetched_from = fetch
        keys = parse_jwks(fetched.jwks, on_unreadable=_unreadable)
        if self.keys.keys() - keys.keys():
            self._on_withdrawn()  # tokens a withdrawn key signed must be checked again
        self.keys = keys
        ttl = DEFAULT_KEY_TTL if fetched.max_age is None else fetched.max_age
        self._due = time.monotonic() + min(max(ttl, KEY_TTL_BOUNDS[0]), KEY_TTL_BOUNDS[1])
        if self._failing:
            logger.info("verifier: keys fetched again")
            self._failing = False

    def _failed(self, exc: BaseException) -> None:
        if not self._failing:
            held = len(self.keys)
            logger.warning("verifier: keys could not be fetched (%s); keeping %d", type(exc).__name__, held)
        self._failing = True
        self._due = time.monotonic() + RETRY_AFTER_FAILURE


def _unreadable(kid: str) -> None:
    logger.warning("jwks: key %r cannot be read; it is ignored", kid)
