"""Values and protocols the core shares with the stores: records, decisions, ``Store``, ``Clock``.

The core depends on these protocols and never on a concrete backend. The store protocol is split by
concern, as ``limits`` splits its storage capabilities, so a part of the core asks only for what it uses:

==========================  =========================================================================
:class:`SessionStore`       sessions, each with its refresh chain; ``refresh`` applies a decision
:class:`RevocationStore`    the revocation feed and revoked access tokens
:class:`RateLimitStore`     rate-limit buckets (GCRA, see :mod:`keyturn.ratelimit`)
:class:`KeyStore`           signing keys
:class:`DpopStore`          DPoP proofs seen lately (their ``jti``)
:class:`UserStore`          the built-in user store
:class:`ClientStore`        registered OAuth 2.0 clients
:class:`Store`              the first four with ``open``, ``close``, ``ping`` and ``prune``
:class:`Backend`            ``Store``, ``UserStore``, ``ClientStore``: what every concrete store implements
==========================  =========================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, TypeAlias, runtime_checkable

from .errors import KeyturnError

if TYPE_CHECKING:
    from .ratelimit import MAX_RATE_COUNT as MAX_RATE_COUNT
    from .ratelimit import MAX_RATE_PERIOD as MAX_RATE_PERIOD
    from .ratelimit import RateLimit as RateLimit
    from .ratelimit import micros as micros
    from .tokens import RefreshClaims

JSONValue: TypeAlias = "str | int | float | bool | list[JSONValue] | dict[str, JSONValue] | None"
Claims: TypeAlias = Mapping[str, JSONValue]

SessionState = Literal["active", "revoked"]
RevokedReason = Literal["logout", "logout_all", "reuse", "revoked", "password_changed", "subject_disabled"]
KeyUse = Literal["access", "refresh"]
AccessAlgorithm = Literal["ES256", "EdDSA", "RS256"]
DpopMode = Literal["optional", "required", "off"]
ClientDpop = Literal["optional", "required"]
"""A registered client's own DPoP policy (``keyturn clients add --dpop``): only tightens the service's."""


class Clock(Protocol):
    """Where the core gets the time from (epoch seconds)."""

    def now(self) -> float: ...


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session: one refresh-token family."""

    sid: str
    sub: str
    created_at: float
    absolute_expires_at: float
    head_jti: str
    gen: int
    last_seen_at: float
    state: SessionState = "active"
    revoked_reason: RevokedReason | None = None
    revoked_at: float | None = None
    user_agent: str | None = None
    ip: str | None = None
    client_id: str | None = None
    claims: Mapping[str, JSONValue] = field(default_factory=dict)
    jkt: str | None = None
    """The RFC 7638 thumbprint of the DPoP key the session is bound to (RFC 9449); ``None``: unbound."""


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    """One refresh token as the session knows it (never the token string).

    Stores keep no record per token: a session keeps its head (all of these fields, from which the head
    token is signed again, byte for byte) and, for the generations rotated recently enough for the grace
    period to reach, their generation, id and ``rotated_at`` only (``kid`` is then ``""`` and the times 0).
    """

    jti: str
    sid: str
    gen: int
    kid: str
    issued_at: int
    expires_at: int
    rotated_at: float | None = None


@dataclass(frozen=True, slots=True)
class Revocation:
    """One entry of the revocation feed: a revoked session (``sid``) or access token (``jti``)."""

    seq: int
    kind: Literal["sid", "jti"]
    value: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A signing key as the store keeps it; ``material`` is encrypted with the master secret."""

    kid: str
    use: KeyUse
    alg: str
    material: bytes
    public_jwk: str | None
    created_at: float
    active: bool = True


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user of the built-in user store."""

    username: str
    password_hash: str
    created_at: float
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A registered OAuth 2.0 client: public (no secret) or confidential (``secret_hash`` set).

    ``secret_hash`` is a keyed hash of the generated secret (``keyturn.clients``), never the secret.
    ``dpop``: ``required`` when every session the client starts must be started with a DPoP proof (and,
    for a confidential client, each of its token requests must carry one: ``dpop_gate.token_request_policy``).
    """

    client_id: str
    created_at: float
    secret_hash: str | None = field(default=None, repr=False)
    dpop: ClientDpop = "optional"

    @property
    def confidential(self) -> bool:
        return self.secret_hash is not None


MICROSECONDS = 1_000_000
"""Rate-limit state and waits are whole microseconds (see :mod:`keyturn.ratelimit`)."""


@dataclass(frozen=True, slots=True)
class RateLimitTake:
    """One call to take from the bucket ``key`` under ``limit`` at ``now``, as part of another store call."""

    key: str
    limit: RateLimit
    now: float


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    """What a take from a rate-limit bucket answered."""

    allowed: bool
    retry_after: float = 0.0
    """Seconds until a call would be allowed (``0`` when this one was)."""

    @classmethod
    def refused(cls, wait_us: int) -> RateLimitResult:
        return cls(False, max(wait_us, 1) / MICROSECONDS)


# Refresh decisions: a pure function of (session, presented token record, now) returns one of these,
# and the store applies it atomically.


ReplayCause = Literal["concurrent", "retry"]
"""Why a rotated token came back inside the grace period: ``concurrent``, a copy sent at the same moment
(rotated at most ``CONCURRENT_WITHIN`` seconds before: two tabs, a double submit); ``retry``, later in
the grace period (a client that lost the answer and asked again)."""
ReuseCause = Literal["late", "stale", "unknown"]
"""Why a token was judged reused: ``late``, the token just before the head, past the grace period (a
client that lost its last answer and came back late, or a copy used after its owner moved on); ``stale``,
two or more generations behind the head (a copy kept from long ago: what a stolen token looks like);
``unknown``, not a generation the session has rotated (the head's generation with another id, or one
ahead of it: a store restored from a backup, or a token signed with a leaked key)."""
CONCURRENT_WITHIN = 1.0
"""Seconds after a rotation within which a replay of the rotated token counts as ``concurrent``."""


@dataclass(frozen=True, slots=True)
class Rotate:
    """The presented token is the head: make ``new_head`` the head, mark the old one rotated."""

    new_head: RefreshRecord
    now: float
    forget_before: float = field(default=float("-inf"), compare=False)
    """Rotations before this time can no longer be replayed: the store may forget them."""


@dataclass(frozen=True, slots=True)
class Replay:
    """An earlier token inside the grace period: answer with the current head, change nothing."""

    now: float
    cause: ReplayCause = field(default="retry", compare=False)


@dataclass(frozen=True, slots=True)
class Reuse:
    """An earlier token outside the grace period: revoke the whole session."""

    now: float
    revocation_expires_at: float
    cause: ReuseCause = field(default="stale", compare=False)


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse with ``error``; change nothing."""

    error: KeyturnError


RefreshDecision: TypeAlias = Rotate | Replay | Reuse | Reject
Decide: TypeAlias = Callable[[SessionRecord | None, RefreshRecord | None], RefreshDecision]


@dataclass(frozen=True, slots=True)
class Limited:
    """A rate-limit take of a refresh refused the call: nothing was read or decided, nothing else written."""

    take: RateLimitTake
    retry_after: float


@dataclass(frozen=True, slots=True)
class SubjectRefused:
    """The store's own user store refused the refresh's subject (``user`` of ``SessionStore.refresh``: no
    such user, or disabled): the takes stand, nothing was decided or written past them."""

    user: str


class RefreshLimits(Protocol):
    """The rate limits of one refresh call (``keyturn.ratelimit.RateLimiter.refresh`` makes them)."""

    async def check(self) -> None:
        """Before any work: raise ``RateLimited`` if the call is already known not to pass; takes nothing."""

    def takes(self, claims: RefreshClaims | None, now: float) -> Sequence[RateLimitTake]:
        """What the call takes from: its address's bucket, and its session's once ``claims`` verified;
        ``RateLimited`` if one of them is already known to refuse."""

    async def take(self, takes: Sequence[RateLimitTake]) -> None:
        """Take ``takes`` on their own, for a call that ends before the store's refresh step; raise
        ``RateLimited`` if one refuses."""

    def refused(self, limited: Limited) -> KeyturnError:
        """The error to answer a take the store's refresh step refused with."""


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    """What a store did with a decision: the session afterwards and, unless rejected, its head."""

    decision: RefreshDecision | Limited | SubjectRefused
    session: SessionRecord | None
    head: RefreshRecord | None


class SessionStore(Protocol):
    """Sessions, each with its refresh chain (no record per token); every method is atomic."""

    async def create_session(self, session: SessionRecord, head: RefreshRecord) -> None: ...

    async def refresh(
        self,
        sid: str,
        jti: str,
        decide: Decide,
        takes: Sequence[RateLimitTake] = (),
        *,
        user: str | None = None,
    ) -> RefreshOutcome:
        """Load the session, call ``decide`` on it and the presented token as its chain knows it (``None``
        if it knows none), and apply the answer atomically: a rotation is one conditional update.

        First one call is taken from each of ``takes``, in order, each atomically as by
        ``rate_limit_take`` (SQLite in the refresh's own transaction, a write it already pays for; Redis in
        the script that reads the session; PostgreSQL just before the refresh's transaction, whose row
        locks it would otherwise hold for longer). If one refuses, the outcome is :class:`Limited`: nothing
        is read, decided or written past it, and the takes before it stand. Takes are never repeated when
        the step is retried.

        With ``user`` (a store that is also the built-in user store, checking the subject for it: see
        :class:`UserStoreCheck`), the session's read also reads whether ``user`` is one of this store's
        users and not disabled (SQL: in the same statement; Redis: in the same script). If the session
        exists and the user does not, or is disabled, the outcome is :class:`SubjectRefused`: nothing is
        decided or written past the takes (the caller revokes). ``decide`` is the same pure decision as
        without ``user``.
        """

    async def get_session(self, sid: str) -> SessionRecord | None: ...

    async def list_sessions(self, sub: str, *, include_revoked: bool = False) -> list[SessionRecord]: ...

    async def list_all_sessions(self, *, include_revoked: bool = False) -> list[SessionRecord]: ...

    async def revoke_session(
        self, sid: str, reason: RevokedReason, now: float, revocation_expires_at: float
    ) -> bool:
        """Revoke one session; ``False`` if it was missing or already revoked."""

    async def revoke_subject(
        self, sub: str, reason: RevokedReason, now: float, revocation_expires_at: float
    ) -> list[str]:
        """Revoke every active session of ``sub``; return their ids."""


class RevocationStore(Protocol):
    """The revocation feed (revoked sessions and access tokens, numbered in order); atomic methods."""

    async def revoke_access_token(self, jti: str, expires_at: float) -> None: ...

    async def is_access_token_revoked(self, jti: str, now: float) -> bool: ...

    async def revocations_since(self, seq: int, now: float, limit: int = 1000) -> list[Revocation]: ...

    async def revocation_head(self) -> int:
        """The sequence number of the newest revocation ever added (0 if none), pruned ones included.

        A reader whose cursor is past it is reading a store that was reset or replaced (see
        ``keyturn.revocation``)."""


class RateLimitStore(Protocol):
    """Rate-limit buckets, each one GCRA theoretical arrival time (see :mod:`keyturn.ratelimit`)."""

    async def rate_limit_take(self, key: str, limit: RateLimit, now: float) -> RateLimitResult:
        """Take one call from the bucket ``key`` under ``limit`` at ``now``, atomically (GCRA).

        A refused take changes nothing. ``key`` names what is limited (``refresh_per_ip:192.0.2.1``); it
        never holds a secret.
        """


class DpopStore(Protocol):
    """The DPoP proofs seen lately (RFC 9449): each proof's ``jti`` is accepted once, by every process."""

    async def use_dpop_jti(self, key: str, expires_at: float, now: float) -> bool:
        """Remember ``key`` (a proof's key and ``jti``, hashed) until ``expires_at``; ``False`` if it is
        already remembered and unexpired at ``now`` (a replay). Atomic: of concurrent calls with one key,
        exactly one answers ``True``."""


class KeyStore(Protocol):
    """Signing keys (their material encrypted); every method is atomic."""

    async def list_keys(self) -> list[StoredKey]: ...

    async def add_keys(self, keys: Sequence[StoredKey]) -> None:
        """Add ``keys`` (a rotation): the newest active key of each use signs from then on."""

    async def ensure_keys(self, candidates: Sequence[StoredKey]) -> list[StoredKey]:
        """Add each candidate whose ``use`` and ``alg`` have no active key yet; return all keys."""

    async def delete_keys(self, kids: Sequence[str]) -> int:
        """Delete the keys with these ids (retired keys no live token needs); return how many there were."""


class Store(SessionStore, RevocationStore, RateLimitStore, KeyStore, DpopStore, Protocol):
    """Persistence for sessions, revocations, rate limits and keys, opened and pruned."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` if the store cannot answer."""

    async def prune(self, now: float) -> int:
        """Delete what has expired (rate-limit buckets that are full again too); return how many rows or
        keys went."""


class UserStore(Protocol):
    """The built-in user store's persistence."""

    async def get_user(self, username: str) -> UserRecord | None: ...

    async def add_user(self, user: UserRecord) -> bool:
        """Add ``user``; ``False`` if the name is taken."""

    async def update_user(
        self, username: str, *, password_hash: str | None = None, disabled: bool | None = None
    ) -> bool:
        """Change a user; ``False`` if there is none by that name."""

    async def list_users(self) -> list[UserRecord]: ...


class ClientStore(Protocol):
    """Registered OAuth 2.0 clients (``keyturn clients``)."""

    async def get_client(self, client_id: str) -> ClientRecord | None: ...

    async def add_client(self, client: ClientRecord) -> bool:
        """Add ``client``; ``False`` if the id is taken."""

    async def remove_client(self, client_id: str) -> bool:
        """Remove a client; ``False`` if there is none by that id. Its sessions stay as they are."""

    async def list_clients(self) -> list[ClientRecord]:
        """Every registered client, by id."""


class SubjectCheck(Protocol):
    """The application's answer to "may this subject still hold a session?"."""

    async def __call__(self, sub: str) -> bool: ...


@runtime_checkable
class UserStoreCheck(SubjectCheck, Protocol):
    """A subject check that is "an enabled user of ``user_store``" (the built-in user store's): when that
    user store is the session store itself, its refresh step answers it (``SessionStore.refresh``'s
    ``user``), in the statement that reads the session, instead of a call of its own."""

    @property
    def user_store(self) -> UserStore: ...


class Backend(Store, UserStore, ClientStore, Protocol):
    """What every concrete store offers: the session store, the built-in user store, the clients."""


_MOVED_TO_RATELIMIT = ("RateLimit", "micros", "MAX_RATE_COUNT", "MAX_RATE_PERIOD")


def __getattr__(name: str) -> object:
    """``RateLimit`` and its arithmetic live in :mod:`keyturn.ratelimit`; the old import path still works."""
    if name in _MOVED_TO_RATELIMIT:
        from . import ratelimit

        return getattr(ratelimit, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
