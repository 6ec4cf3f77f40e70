"""Rate limits of the token service (DESIGN section 5), kept in the shared store.

Four limits, each a :class:`~keyturn.typing.RateLimit` (GCRA: ``count`` calls at once, then one every
``period / count``) on buckets of its own:

=========================  ==================================  ==========================================
limit                      bucket key                          when
=========================  ==================================  ==========================================
``refresh_per_ip``         ``refresh_per_ip:<address>``        taken with the refresh, or alone when the
                                                               token does not verify
``refresh_per_session``    ``refresh_per_session:<sid>``       taken with the refresh, once the refresh
                                                               token's signature has verified
``login_per_ip``           ``login_per_ip:<address>``          taken on ``/login``, before the password
                                                               hash
``login_per_username_ip``  ``login_per_username_ip:<h>:<a>``   then, still before the password hash
=========================  ==================================  ==========================================

``<address>`` is the client's IPv4 address, or the /64 network of an IPv6 one (one host, or one home, has
a whole /64). ``<h>`` is a keyed hash of the username (HMAC-SHA256 with a key derived from the master
secret, so every process of a service agrees and the name cannot be read back, even if a password was
typed into it). No key holds a token or a password.

Every take is atomic in the store. A refresh's takes are part of the store's refresh step
(``Store.refresh(…, takes)``): in SQLite they share its transaction instead of paying for two more. A
refresh token that does not verify takes from its address's bucket alone, on its own. Before any work, a
call to a bucket this process has seen refuse, and whose ``Retry-After`` is not over, is refused at once
(see :class:`RateLimiter`). A call refused by a limit is answered ``rate_limited`` (429, ``Retry-After``)
and changes nothing else.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .clock import SystemClock
from .config import Settings
from .errors import RateLimited
from .events import emit
from .sessions import RefreshLimits
from .tokens import RefreshClaims
from .typing import Clock, JSONValue, Limited, RateLimit, RateLimitTake, Store

__all__ = ["LimitName", "RateLimitPolicy", "RateLimiter", "address_key"]

LimitName = Literal["refresh_per_ip", "refresh_per_session", "login_per_ip", "login_per_username_ip"]

LOG_EVERY = 10.0
"""Seconds between two ``ratelimit.hit`` warnings of one bucket; the refusals between are debug lines."""
LOG_MEMORY = 10_000
"""Buckets whose last warning this process remembers; past that it forgets them all and starts again."""
MAX_KEY_TEXT = 64


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    """The limits in force; ``None`` leaves that one out."""

    refresh_per_ip: RateLimit | None = None
    refresh_per_session: RateLimit | None = None
    login_per_ip: RateLimit | None = None
    login_per_username_ip: RateLimit | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimitPolicy:
        if not settings.rate_limits:
            return cls()
        return cls(
            refresh_per_ip=settings.rate_limit_refresh_per_ip,
            refresh_per_session=settings.rate_limit_refresh_per_session,
            login_per_ip=settings.rate_limit_login_per_ip,
            login_per_username_ip=settings.rate_limit_login_per_username_ip,
        )


@functools.lru_cache(maxsize=4096)  # parsing an address costs more than the rest of a take's Python
def address_key(address: str) -> str:
    """The bucket name of a client address: an IPv4 address, an IPv6 /64, or (not an IP) the text."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        printable = "".join(c if c.isascii() and c.isprintable() else "?" for c in address)
        return printable[:MAX_KEY_TEXT] or "?"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip), 64), strict=False))
    return str(ip)


class RateLimiter:
    """Takes from the buckets of :class:`RateLimitPolicy` in ``store``; ``RateLimited`` when one is empty.

    A refused take says exactly when the bucket will take a call again, and until then nothing can make
    it take one sooner (other takes only push that time further out). So the limiter remembers it, and
    refuses further calls to that bucket until then without asking the store: a flood costs the store one
    call per bucket and ``Retry-After``, in each process, rather than one per request.
    """

    def __init__(
        self, store: Store, policy: RateLimitPolicy, *, username_key: bytes, clock: Clock | None = None
    ) -> None:
        if len(username_key) < 16:
            raise ValueError("username_key must be at least 16 bytes")
        self.store = store
        self.policy = policy
        self.clock: Clock = clock or SystemClock()
        self._username_key = username_key
        self._closed: dict[str, float] = {}  # bucket: until when it refuses every call
        self._logged: dict[str, tuple[float, int]] = {}  # bucket: its last warning, refusals since

    def refresh(self, address: str | None) -> RefreshLimits:
        """The limits of one refresh call from ``address``, for ``SessionService.refresh(limits=…)``."""
        return _RefreshCall(self, None if address is None else address_key(address))

    async def login(self, username: str, address: str | None) -> None:
        """The login limits, per address and then per username and address: before the password hash."""
        if address is None:
            return
        where, now = address_key(address), self.clock.now()
        await self.take(
            [
                self.bucket("login_per_ip", where, now),
                self.bucket("login_per_username_ip", f"{self.username_hash(username)}:{where}", now),
            ]
        )

    def username_hash(self, username: str) -> str:
        """A username as it appears in bucket keys and logs: keyed, so it cannot be read back."""
        digest = hmac.new(self._username_key, username.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return digest.hexdigest()[:32]

    def bucket(self, name: LimitName, key: str, now: float) -> RateLimitTake | None:
        """One call from the bucket ``name:key`` at ``now``, or ``None`` if limit ``name`` is off."""
        limit: RateLimit | None = getattr(self.policy, name)
        return None if limit is None else RateLimitTake(f"{name}:{key}", limit, now)

    def check(self, take: RateLimitTake | None) -> None:
        """Raise ``RateLimited`` if ``take`` is known to be refused (see the class); no store call."""
        if take is None or not self._closed:
            return
        until = self._closed.get(take.key)
        if until is not None:
            if take.now < until:
                raise self.refused(Limited(take, until - take.now))
            del self._closed[take.key]

    async def take(self, takes: Sequence[RateLimitTake | None]) -> None:
        """Take one call from each of ``takes`` in order, each on its own; ``RateLimited`` at a refusal."""
        for take in takes:
            if take is None:
                continue
            self.check(take)
            result = await self.store.rate_limit_take(take.key, take.limit, take.now)
            if not result.allowed:
                raise self.refused(Limited(take, result.retry_after))

    def refused(self, limited: Limited) -> RateLimited:
        """The error for a refusal, remembered (see the class) and reported as a ``ratelimit.hit`` event.

        Every refusal is an event (metrics count them all); it is a warning at most once per bucket every
        ``LOG_EVERY`` seconds and a debug line otherwise, so a flood is reported rather than copied.
        """
        bucket, retry_after = limited.take.key, limited.retry_after
        now = self.clock.now()
        for memory in (self._closed, self._logged):
            if len(memory) >= LOG_MEMORY and bucket not in memory:
                memory.clear()
        self._closed[bucket] = max(self._closed.get(bucket, now), now + retry_after)
        name, shown = _shown(bucket)
        seconds = max(1, math.ceil(retry_after))
        last, quiet = self._logged.get(bucket, (-math.inf, 0))
        if now - last < LOG_EVERY:
            self._logged[bucket] = (last, quiet + 1)
            emit("ratelimit.hit", logging.DEBUG, limit=name, **shown, retry_after=seconds)
        else:
            self._logged[bucket] = (now, 0)
            emit("ratelimit.hit", logging.WARNING, limit=name, **shown, retry_after=seconds, suppressed=quiet)
        return RateLimited(retry_after, f"Too many calls ({name}); retry in {seconds} s.")


def _shown(bucket: str) -> tuple[str, dict[str, JSONValue]]:
    """A bucket's limit name and what its key is, for the log: ``ip``, ``sid`` or ``user`` (a hash)."""
    name, _, key = bucket.partition(":")
    if name == "refresh_per_session":
        return name, {"sid": key}
    if name == "login_per_username_ip":
        user, _, ip = key.partition(":")
        return name, {"ip": ip, "user": user}
    return name, {"ip": key}


class _RefreshCall:
    """The :class:`~keyturn.sessions.RefreshLimits` of one call: per address, then per session."""

    def __init__(self, limiter: RateLimiter, where: str | None) -> None:
        self._limiter = limiter
        self._where = where

    async def check(self) -> None:
        if self._where is not None:
            limiter = self._limiter
            limiter.check(limiter.bucket("refresh_per_ip", self._where, limiter.clock.now()))

    def takes(self, claims: RefreshClaims | None, now: float) -> list[RateLimitTake]:
        limiter = self._limiter
        takes = []
        if self._where is not None and (by_address := limiter.bucket("refresh_per_ip", self._where, now)):
            takes.append(by_address)  # checked by check() a moment ago
        if claims is not None:  # its signature verified: a forged token cannot spend a victim's budget
            by_session = limiter.bucket("refresh_per_session", claims.sid, now)
            if by_session is not None:
                limiter.check(by_session)
                takes.append(by_session)
        return takes

    async def take(self, takes: Sequence[RateLimitTake]) -> None:
        await self._limiter.take(takes)

    def refused(self, limited: Limited) -> RateLimited:
        return self._limiter.refused(limited)
