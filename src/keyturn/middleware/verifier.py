"""``AccessTokenVerifier``: offline validation of Keyturn access tokens for resource servers.

A request costs a signature check the first time a token is seen and a dictionary look-up after that
(the validated-token cache, docs/contract.md); expiry and revocation are checked on every call. Everything
that does I/O runs on the verifier's own thread with its own event loop, so sync frameworks (Django,
Flask) and async ones (FastAPI, any ASGI app) share one implementation and no request ever waits for it,
except a request whose token names a key the verifier has not seen yet:

- keys come from the token service's JWKS (kept as long as its ``Cache-Control`` says, then fetched again
  in the background) or from a shared store; a token naming an unknown ``kid`` waits for the fetch under
  way or starts one, but fetches start at most once per ``key_refetch_interval`` (paced by a monotonic
  timer), so a flood of made-up ids cannot hammer the token service. A token whose key is still unknown
  is ``token_invalid`` if the last successful fetch began after it was issued (a genuine key would have
  been listed), else a retryable 503: its key may be newer than that fetch (``_held_keys.py``);
- revocations come from the feed (``GET /auth/revocations?since=N`` or the store), polled every
  ``revocation_poll_interval`` seconds into two in-memory sets (sessions and single tokens) whose
  entries drop out when no token they match can still be valid (``keyturn.revocation``).

When the feed cannot be read, the last set stays in force and :meth:`AccessTokenVerifier.status` reports
the lag; with ``revocation_fail_closed_after`` set, tokens are refused (503, retryable) once the lag
passes it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Self, TypeVar

from ..clock import MonotonicClock, SystemClock
from ..config import Settings
from ..dpop import ALGORITHMS as DPOP_ALGORITHMS
from ..errors import TokenExpired, TokenInvalid, TokenRevoked, VerifierUnavailable
from ..http import KEYTURN_ERRORS
from ..revocation import FeedFollower, RevocationSource
from ..tokens import AccessClaims, UnknownKey, read_access
from ..typing import Clock, DpopMode, JSONValue, Store
from ._dpop import BEARER, Presented, ResourceProofs
from ._held_keys import HeldKeys
from ._io_thread import IOThread, forget_in_forked_children
from ._sources import FETCH_ERRORS, JWKSURL, FeedURL, KeySource, StoreKeys, StoreRevocations

__all__ = ["AccessTokenVerifier"]

logger = logging.getLogger("keyturn.middleware")

T = TypeVar("T")


class AccessTokenVerifier:
    """Validates access tokens offline; safe to share between threads and event loops.

    Build one per process with :meth:`for_service` (JWKS and feed over HTTP), :meth:`for_store` (a
    store shared with the token service) or the constructor (any :class:`KeySource` and
    :class:`RevocationSource`), and call :meth:`verify` (sync) or :meth:`averify` (async). It starts
    on first use; :meth:`close` stops its thread.
    """

    def __init__(
        self,
        keys: KeySource,
        revocations: RevocationSource | None,
        *,
        issuer: str = "keyturn",
        audience: str = "keyturn-api",
        leeway: float = 30.0,
        revocation_poll_interval: float = 1.0,
        revocation_fail_closed_after: float | None = None,
        key_refetch_interval: float = 1.0,
        cache_size: int = 10_000,
        timeout: float = 5.0,
        clock: Clock | None = None,
        timer: Clock | None = None,
        on_start: Callable[[], Awaitable[None]] | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
        dpop_proof_max_age: float = 60.0,
        dpop: bool | DpopMode = True,
    ) -> None:
        if revocation_poll_interval <= 0 or key_refetch_interval <= 0 or timeout <= 0 or cache_size < 0:
            raise ValueError("intervals and the timeout must be positive, the cache size not negative")
        if dpop not in (True, False, "optional", "required", "off"):
            raise ValueError(f"dpop must be True, False, optional, required or off, not {dpop!r}")
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.clock = clock or SystemClock()
        self._poll_interval = revocation_poll_interval
        self._fail_closed_after = revocation_fail_closed_after
        self._cache_size = cache_size
        self._timeout = timeout
        self._on_start = on_start
        self._on_close = on_close

        self._cache: dict[str, AccessClaims] = {}  # the same object for good: cleared, never replaced
        self._held = HeldKeys(
            keys,
            clock=self.clock,
            timer=timer or MonotonicClock(),  # paces key fetches; a wall clock may step back
            timeout=timeout,
            refetch_interval=key_refetch_interval,
            leeway=leeway,
            on_withdrawn=self._cache.clear,
        )
        self._feed = FeedFollower(
            revocations, leeway, clock=self.clock, timeout=timeout, unreachable=FETCH_ERRORS
        )
        self._revoked = self._feed.revoked  # the same object for good: read on every request
        self._io: IOThread | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._starting: asyncio.Task[Any] | None = None
        self._lock = threading.Lock()
        self.proofs = ResourceProofs(self.clock, max_age=dpop_proof_max_age, leeway=leeway)
        """DPoP proofs of bound tokens, with this process's replay cache."""
        self.dpop_algs: tuple[str, ...] = () if dpop in (False, "off") else DPOP_ALGORITHMS
        """The proof algorithms a refusal's ``DPoP`` challenge names (RFC 9449 section 7.1), the metadata's
        ``dpop_signing_alg_values_supported``; none with ``dpop`` False or ``off`` (``KEYTURN_DPOP=off``),
        when only ``Bearer`` is challenged. Bound tokens are checked with their proofs either way."""
        self.errors = KEYTURN_ERRORS.at_resource(self.dpop_algs)
        """How the refusals of its tokens are answered: the bearer challenge, then ``DPoP`` with
        :attr:`dpop_algs` while DPoP is on; ``.presented(authorization)`` for a request's own scheme."""
        forget_in_forked_children(self)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def for_service(
        cls,
        url: str,
        *,
        revocations: bool = True,
        settings: Settings | None = None,
        **options: Any,
    ) -> Self:
        """Keys and revocations from a token service at ``url`` (e.g. ``http://127.0.0.1:8000``).

        ``ISSUER``, ``AUDIENCE``, ``LEEWAY``, ``ROUTE_PREFIX``, ``REVOCATION_POLL_INTERVAL``,
        ``REVOCATION_FAIL_CLOSED_AFTER``, ``DPOP_PROOF_MAX_AGE`` and ``DPOP`` (``off``: no DPoP challenge)
        come from ``settings`` (default: the ``KEYTURN_*`` environment); keyword arguments win.
        """
        settings = settings or Settings()
        base = url.rstrip("/")
        timeout = options.get("timeout", 5.0)
        prefix = options.pop("route_prefix", settings.route_prefix)
        feed = FeedURL(f"{base}{prefix}/revocations", timeout=timeout) if revocations else None
        keys = JWKSURL(f"{base}/.well-known/jwks.json", timeout=timeout)
        return cls(keys, feed, **verifier_options(settings, options))

    @classmethod
    def for_store(cls, store: Store | str, *, settings: Settings | None = None, **options: Any) -> Self:
        """Keys and revocations from the store the token service uses: a store URL (opened on the
        verifier's own thread, closed with it), or a ``Store`` object that is not bound to an event loop
        (the memory store; PostgreSQL and Redis stores belong to the loop that opened them: give a URL).

        Options come from ``settings`` (default: the ``KEYTURN_*`` environment) as for
        :meth:`for_service`. ``route_prefix`` is taken and ignored, as ``ROUTE_PREFIX`` in ``settings``
        is: it says where the service's routes are, and a store has none. So one set of settings (Django's
        ``KEYTURN``, say) builds either kind of verifier.
        """
        settings = settings or Settings()
        options.pop("route_prefix", None)
        owned = isinstance(store, str)
        if isinstance(store, str):
            from ..store import open_store  # only this way of building needs the store package

            store = open_store(store)
        clock: Clock = options.get("clock") or SystemClock()
        options["clock"] = clock
        if owned:
            options["on_start"] = store.open
            options["on_close"] = store.close
        return cls(
            StoreKeys(store), StoreRevocations(store, clock.now), **verifier_options(settings, options)
        )

    # -- verifying -----------------------------------------------------------------------------

    def verify(self, token: str, presented: Presented = BEARER) -> AccessClaims:
        """The token's claims, or a ``KeyturnError``: ``token_invalid``, ``token_expired``,
        ``token_revoked``, ``invalid_dpop_proof`` (a DPoP-bound token without a valid proof of its key
        for this request, ``presented``), or ``server_error`` (503) when keys or revocations are out of
        reach.

        Blocks only when the token names a key not seen before, for at most ``timeout`` seconds.
        """
        claims = self._verify(token)
        self.proofs.check(claims, token, presented)
        return claims

    async def averify(self, token: str, presented: Presented = BEARER) -> AccessClaims:
        """:meth:`verify` for event loops: waiting for a key fetch does not block the loop."""
        claims = await self._averify(token)
        self.proofs.check(claims, token, presented)
        return claims

    def _verify(self, token: str) -> AccessClaims:
        if self._io is None:
            self.start()
        try:
            return self._check(token)
        except UnknownKey as exc:
            future = self._submit(self._held.find(exc.kid))
            try:
                found = future.result(self._timeout)
            except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError) as stopped:
                future.cancel()  # timed out, or the verifier is closing
                found = stopped
            return self._after_find(token, found)

    async def _averify(self, token: str) -> AccessClaims:
        if self._io is None:
            await asyncio.to_thread(self.start)
        try:
            return self._check(token)
        except UnknownKey as exc:
            submitted = self._submit(self._held.find(exc.kid))
            try:
                found = await asyncio.wait_for(asyncio.wrap_future(submitted), self._timeout)
            except TimeoutError as timeout:
                found = timeout
            except asyncio.CancelledError as cancelled:
                if not submitted.cancelled():
                    raise  # this request was cancelled, not the fetch
                found = cancelled
            return self._after_find(token, found)

    def _check(self, token: str) -> AccessClaims:
        if type(token) is not str:
            raise TokenInvalid("No token was given.")
        now = self.clock.now()
        claims = self._cache.get(token)
        if claims is None:
            claims = read_access(
                token,
                now,
                self._held.keys.get,
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
            )
            self._remember(token, claims)
        elif now > claims.exp + self.leeway:
            self._cache.pop(token, None)
            raise TokenExpired()
        revoked = self._revoked
        if claims.sid in revoked.sids or claims.jti in revoked.jtis:
            raise TokenRevoked()
        if self._fail_closed_after is not None and self.revocation_lag() > self._fail_closed_after:
            raise VerifierUnavailable("Revocations have not been read for too long; retry later.")
        return claims

    def _remember(self, token: str, claims: AccessClaims) -> None:
        cache = self._cache
        if self._cache_size == 0:
            return
        while len(cache) >= self._cache_size:
            try:  # the oldest entry; another thread may be evicting too
                del cache[next(iter(cache))]
            except (KeyError, RuntimeError, StopIteration):
                break
        cache[token] = claims

    def _after_find(self, token: str, found: bool | BaseException | None) -> AccessClaims:
        if isinstance(found, BaseException):
            raise VerifierUnavailable("The token's key could not be fetched; retry later.")
        if found:
            try:
                return self._check(token)
            except UnknownKey:  # the key was withdrawn again in between
                found = None
        if found is False or self._held.issued_before_last_fetch(token):
            raise TokenInvalid("The access token's key is unknown.")
        raise VerifierUnavailable("The token's key is not known yet; retry shortly.")

    # -- state ---------------------------------------------------------------------------------

    def revocation_lag(self) -> float:
        """Seconds since the revocation feed was last read in full (since start if never)."""
        return self._feed.lag()

    def status(self) -> dict[str, JSONValue]:
        """For a health check: keys held, revocations held, feed position and lag."""
        lag = self.revocation_lag()
        healthy = bool(self._held.keys) and (
            self._fail_closed_after is None or lag <= self._fail_closed_after
        )
        return {
            "healthy": healthy,
            "keys": len(self._held.keys),
            "key_fetches": self._held.fetches,
            "revocations": len(self._revoked),
            "revocations_last_seq": self._revoked.last_seq,
            "revocation_lag_seconds": round(lag, 3),
            "cached_tokens": len(self._cache),
        }

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the I/O thread, fetch the keys and read the feed once (waiting at most ``timeout``)."""
        with self._lock:
            if self._io is not None:
                return
            self._feed.started()
            io = self._io = IOThread()  # set before the start runs, so the start can be seen (and closed)
            future = io.submit(self._startup())
        try:
            future.result(self._timeout)
        except concurrent.futures.TimeoutError:
            logger.warning("verifier: keys or revocations not loaded within %ss; going on", self._timeout)
        except concurrent.futures.CancelledError:
            pass  # closed while starting: a later use starts it again

    def close(self) -> None:
        """Stop the I/O thread and close the sources; a later call starts them again."""
        with self._lock:
            io, self._io = self._io, None
        if io is None:
            return
        try:
            io.submit(self._shutdown()).result(self._timeout)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            logger.warning("verifier: did not shut down within %ss", self._timeout)
        finally:
            io.stop()

    def _forget_thread(self) -> None:
        """In a child process after ``fork()``: the I/O thread did not come along; start anew on use."""
        self._io = None
        self._lock = threading.Lock()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        io = self._io
        if io is None:
            coro.close()
            raise VerifierUnavailable("The verifier is closed.")
        return io.submit(coro)

    # -- on the I/O thread ---------------------------------------------------------------------

    async def _startup(self) -> None:
        self._held.begin()
        if self._on_start is not None:
            try:
                await self._on_start()
            except FETCH_ERRORS as exc:  # the store is out of reach: the fetches below fail and are retried
                logger.warning("verifier: could not open the store (%s)", _name(exc))
        self._starting = asyncio.current_task()
        await asyncio.gather(self._held.first(), self._poll())
        self._starting = None
        self._tasks = [asyncio.create_task(self._held.keep_fresh())]
        if self._feed.active:
            self._tasks.append(asyncio.create_task(self._keep_polling()))

    async def _shutdown(self) -> None:
        # A start still under way (``start`` gave up waiting for it) is cancelled first: finishing later,
        # it would start the background tasks on sources closed below.
        tasks = [t for t in (self._starting, *self._tasks) if t is not None]
        self._starting, self._tasks = None, []
        self._held.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        closers: list[Awaitable[None]] = [self._held.close(), self._feed.close()]
        if self._on_close is not None:
            closers.append(self._on_close())
        for failed in await asyncio.gather(*closers, return_exceptions=True):
            if isinstance(failed, BaseException):
                logger.warning("verifier: closing a source failed (%s)", _name(failed))

    async def _poll(self) -> None:
        was_failing = self._feed.failing
        failed = await self._feed.poll()  # an unreadable feed keeps the last set; the lag reports it
        if failed is not None and not was_failing:
            logger.warning("verifier: revocation feed unreadable (%s); keeping the last set", _name(failed))
        elif failed is None and was_failing:
            logger.info("verifier: revocation feed read again")

    async def _keep_polling(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                await self._poll()
            except Exception:  # a bug must not stop the polling for good (the lag shows it meanwhile)
                logger.exception("verifier: reading the revocation feed failed unexpectedly")


def _name(exc: BaseException) -> str:
    return type(exc).__name__


def verifier_options(settings: Settings, options: dict[str, Any]) -> dict[str, Any]:
    """Constructor options: those given win over ``settings`` (the ``KEYTURN_*`` environment). Every
    construction from settings goes through here (``for_service``, ``for_store``, the FastAPI
    embedding's ``auth.verifier``), so none forgets one."""
    from_settings: dict[str, Any] = {
        "issuer": settings.issuer,
        "audience": settings.audience,
        "leeway": settings.leeway,
        "revocation_poll_interval": settings.revocation_poll_interval,
        "revocation_fail_closed_after": settings.revocation_fail_closed_after,
        "dpop_proof_max_age": settings.dpop_proof_max_age,
        "dpop": settings.dpop,
    }
    return from_settings | options
