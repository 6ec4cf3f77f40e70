"""Rate limits of the token service (docs/contract.md, Rate limits), kept in the shared store.

Five limits, each a :class:`RateLimit` (GCRA: ``count`` calls at once, then one every ``period / count``;
the arithmetic is here, and each store repeats it in SQL or Lua) on buckets of its own:

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
``login_global``           ``login_global:all``                then: every login of the service, from
                                                               any address (many addresses together)
=========================  ==================================  ==========================================

``<address>`` is the client's IPv4 address, or the /64 network of an IPv6 one (one host, or one home, has
a whole /64). ``<h>`` is a keyed hash of the username (HMAC-SHA256 with a key derived from the master
secret, so every process of a service agrees and the name cannot be read back, even if a password was
typed into it). No key holds a token or a password.

Every take is atomic in the store. A refresh's takes are part of the store's refresh step
(``Store.refresh(…, takes)``): in SQLite they share its transaction, in PostgreSQL its first statement (with
the session's read, never in the update's transaction), in Redis its first script. A
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
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .clock import SystemClock
from .errors import RateLimited
from .events import emit
from .typing import MICROSECONDS, Clock, JSONValue, Limited, RateLimitStore, RateLimitTake, RefreshLimits

if TYPE_CHECKING:  # annotations only: config imports this module, and sessions and tokens import config
    from .config import Settings
    from .tokens import RefreshClaims

__all__ = [
    "MICROSECONDS",
    "LimitName",
    "RateLimit",
    "RateLimitPolicy",
    "RateLimiter",
    "address_key",
    "micros",
]

LimitName = Literal[
    "refresh_per_ip", "refresh_per_session", "login_per_ip", "login_per_username_ip", "login_global"
]

LOG_EVERY = 10.0
"""Seconds between two ``ratelimit.hit`` warnings of one bucket; the refusals between are debug lines."""
LOG_MEMORY = 10_000
"""Buckets whose last warning this process remembers; past that it forgets them all and starts again."""
MAX_KEY_TEXT = 64

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*$")
_DISABLED = ("off", "0")
MAX_RATE_COUNT = 1_000_000_000
MAX_RATE_PERIOD = 366 * 86_400


def micros(seconds: float) -> int:
    """Epoch seconds as whole microseconds: rate-limit state is kept in integers, exact on every backend."""
    return math.floor(seconds * MICROSECONDS)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` calls per ``period`` seconds: ``count`` at once, then one every ``period / count``.

    Kept as GCRA (the generic cell rate algorithm): a bucket is one number, its theoretical arrival time
    (TAT, in microseconds); a bucket whose TAT has passed is full, the same as no bucket at all.
    """

    count: int
    period: float
    interval_us: int = field(init=False, repr=False, compare=False)
    """Microseconds between two calls at the sustained rate (rounded up: never faster than asked)."""
    tolerance_us: int = field(init=False, repr=False, compare=False)
    """How far ahead of now a bucket's TAT may run: ``count`` intervals, the burst."""

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int):
            raise TypeError("a rate limit's count must be an int")
        if not 1 <= self.count <= MAX_RATE_COUNT:
            raise ValueError(f"a rate limit's count must be 1 to {MAX_RATE_COUNT}")
        if not 0 < self.period <= MAX_RATE_PERIOD:
            raise ValueError(f"a rate limit's period must be over 0 and at most {MAX_RATE_PERIOD} seconds")
        interval = max(1, -(-round(self.period * MICROSECONDS) // self.count))
        object.__setattr__(self, "interval_us", interval)  # frozen: set once, here
        object.__setattr__(self, "tolerance_us", interval * self.count)

    @classmethod
    def parse(cls, text: str) -> RateLimit | None:
        """``"COUNT/SECONDS"`` (``"120/60"``) to a limit; ``"off"`` (or ``"0"``) to ``None``, no limit."""
        if text.strip().lower() in _DISABLED:
            return None
        match = _RATE.match(text)
        if match is None:
            raise ValueError(f"a rate limit is COUNT/SECONDS (such as 120/60) or off, not {text!r}")
        period = float(match[2])
        return cls(int(match[1]), int(period) if period.is_integer() else period)

    def __str__(self) -> str:
        return f"{self.count}/{self.period:g}"

    def take(self, tat_us: int | None, now_us: int) -> tuple[bool, int]:
        """One call at ``now_us`` on a bucket at ``tat_us`` (``None``: no bucket).

        ``(True, new TAT)`` if it is allowed, else ``(False, microseconds until one would be)``. Each
        backend does this same integer arithmetic, in Python, SQL or Lua.
        """
        new_tat = max(tat_us if tat_us is not None else now_us, now_us) + self.interval_us
        wait = new_tat - self.tolerance_us - now_us
        if wait > 0:
            return False, wait
        return True, new_tat

    def wait_us(self, tat_us: int | None, now_us: int) -> int:
        """Microseconds from ``now_us`` until a call on a bucket at ``tat_us`` would be allowed (0: now)."""
        allowed, value = self.take(tat_us, now_us)
        return 0 if allowed else value


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    """The limits in force; ``None`` leaves that one out."""

    refresh_per_ip: RateLimit | None = None
    refresh_per_session: RateLimit | None = None
    login_per_ip: RateLimit | None = None
    login_per_username_ip: RateLimit | None = None
    login_global: RateLimit | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimitPolicy:
        if not settings.rate_limits:
            return cls()
        return cls(
            refresh_per_ip=settings.rate_limit_refresh_per_ip,
            refresh_per_session=settings.rate_limit_refresh_per_session,
            login_per_ip=settings.rate_limit_login_per_ip,
            login_per_username_ip=settings.rate_limit_login_per_username_ip,
            login_global=settings.rate_limit_login_global,
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
        self,
        store: RateLimitStore,
        policy: RateLimitPolicy,
        *,
        username_key: bytes,
        clock: Clock | None = None,
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
        """The login limits, per address, per username and address, then for the whole service: before
        the password hash. A call one address's limit refuses takes nothing from the global one."""
        now = self.clock.now()
        per_address: list[RateLimitTake | None] = []
        if address is not None:
            where = address_key(address)
            per_address = [
                self.bucket("login_per_ip", where, now),
                self.bucket("login_per_username_ip", f"{self.username_hash(username)}:{where}", now),
            ]
        await self.take([*per_address, self.bucket("login_global", "all", now)])

    def username_hash(self, username: str) -> str:
        """A username as it appears in bucket keys and logs: keyed, so it cannot be read back."""
        digest = hmac.new(self._username_key, username.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return digest.hexdigest()[:32]

    def bucket(self, name: LimitName, key: str, now: float) -> RateLimitTake | None:
        """One call from the bucket ``name:key`` at ``now``, or ``None`` if limit ``name`` is off."""
        limit: RateLimit | None = getattr(self.policy, name)
        return None if limit is None else RateLimitTake(f"{name}:{key}", limit, now)

    @property
    def refusing(self) -> bool:
        """Whether some bucket is known to refuse (:meth:`check` can refuse a call without the store)."""
        return bool(self._closed)

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
    if name == "login_global":
        return name, {}
    return name, {"ip": key}


class _RefreshCall:
    """The :class:`~keyturn.sessions.RefreshLimits` of one call: per address, then per session."""

    def __init__(self, limiter: RateLimiter, where: str | None) -> None:
        self._limiter = limiter
        self._where = where

    async def check(self) -> None:
        limiter = self._limiter
        if self._where is not None and limiter.refusing:  # the usual case, nothing refused: no take built
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
