"""What the SQL stores (SQLite and PostgreSQL) share, written once.

- The schema's shape: each table's columns, named as the records' fields and in their order.
- Rows to records and records to parameters.
- The statements both speak alike, written with ``%s`` placeholders (:class:`Dialect` turns them into
  its own).
- :class:`Query` and :data:`Flow`: a statement, and a store call as a generator of them (the calls
  themselves, and the store that runs them, are in ``_sql_store``).

Each dialect keeps only what differs: its placeholders, its locks and upserts, its rate-limit statement,
its DDL (the column types and storage options differ), and its connection handling.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence
from typing import Any, ClassVar, Literal, NamedTuple, TypeAlias, TypeVar

from ..ratelimit import RateLimit
from ..typing import (
    ClientRecord,
    Limited,
    RateLimitResult,
    RateLimitTake,
    RefreshRecord,
    Revocation,
    SessionRecord,
    StoredKey,
    UserRecord,
)
from ._chain import Chain

T = TypeVar("T")

OWN_COLUMNS = (
    "sid, sub, created_at, absolute_expires_at, head_jti, gen, last_seen_at, state, "
    "revoked_reason, revoked_at, user_agent, ip, client_id, claims"
)
BINDING_COLUMNS = "jkt"
"""The DPoP key the session is bound to (issue 17): last in every row, as its migration added it last."""
SESSION_COLUMNS = f"{OWN_COLUMNS}, {BINDING_COLUMNS}"
CHAIN_COLUMNS = "head_kid, head_issued_at, head_expires_at, rotated"
"""The session's refresh chain (``_chain``), after its own columns: what the head token is signed from
besides ``head_jti`` and ``gen``, and the recently rotated generations."""
STATE_COLUMNS = f"{OWN_COLUMNS}, {CHAIN_COLUMNS}, {BINDING_COLUMNS}"
USER_ALLOWED = "EXISTS (SELECT 1 FROM users WHERE username = %s AND NOT disabled)"
"""Whether a user may hold a session (a user of the built-in store, not disabled): one more column of the
session's read, after ``STATE_COLUMNS``, when the store checks the subject itself."""
REVOCATION_COLUMNS = "seq, kind, value, expires_at"
KEY_COLUMNS = "kid, use, alg, material, public_jwk, created_at, active"
USER_COLUMNS = "username, password_hash, created_at, disabled"
CLIENT_COLUMNS = "client_id, secret_hash, created_at, dpop"

Fetch = Literal["none", "one", "all", "count"]
Row: TypeAlias = tuple[Any, ...]


class Query(NamedTuple):  # a tuple: made several times a call, and cheaper to make than a dataclass
    """One statement for the driver to run, and what to send back: nothing, a row (or ``None``), every
    row, or how many rows it changed."""

    sql: str
    params: Sequence[object] | Mapping[str, object] = ()
    fetch: Fetch = "none"


Flow: TypeAlias = Generator[Query, Any, T]
"""A store call without I/O: yields statements, is sent their answers, returns the call's result."""


# -- rows and parameters -------------------------------------------------------------------------------


def session_from(row: Row) -> SessionRecord:
    """A session from a row of ``SESSION_COLUMNS`` (or ``STATE_COLUMNS``: the chain's are left)."""
    sid, sub, created, ends, head_jti, gen, seen, state, reason, revoked_at, agent, ip, client, claims = row[
        :14
    ]
    jkt = row[-1]
    return SessionRecord(
        sid,
        sub,
        created,
        ends,
        head_jti,
        gen,
        seen,
        state,
        reason,
        revoked_at,
        agent,
        ip,
        client,
        {} if claims == "{}" else json.loads(claims),  # most sessions have no claims of their own
        jkt,
    )


def chain_from(row: Row) -> Chain:
    """The refresh chain from a row of ``STATE_COLUMNS``."""
    return Chain(RefreshRecord(row[4], row[0], row[5], row[14], row[15], row[16]), row[17])


def revocation_from(row: Row) -> Revocation:
    return Revocation(*row)


def key_from(row: Row) -> StoredKey:
    kid, use, alg, material, public_jwk, created_at, active = row
    return StoredKey(kid, use, alg, bytes(material), public_jwk, created_at, bool(active))


def user_from(row: Row) -> UserRecord:
    username, password_hash, created_at, disabled = row
    return UserRecord(username, password_hash, created_at, bool(disabled))


def client_from(row: Row) -> ClientRecord:
    client_id, secret_hash, created_at, dpop = row
    return ClientRecord(client_id, created_at, secret_hash, "required" if dpop == "required" else "optional")


def session_params(s: SessionRecord) -> tuple[object, ...]:
    return (
        s.sid,
        s.sub,
        s.created_at,
        s.absolute_expires_at,
        s.head_jti,
        s.gen,
        s.last_seen_at,
        s.state,
        s.revoked_reason,
        s.revoked_at,
        s.user_agent,
        s.ip,
        s.client_id,
        json.dumps(s.claims),
    )


def chain_params(head: RefreshRecord) -> tuple[object, ...]:
    """A new session's chain: its first head, nothing rotated yet."""
    return (head.kid, head.issued_at, head.expires_at, "")


def state_params(s: SessionRecord, head: RefreshRecord) -> tuple[object, ...]:
    """A new session's row, in ``STATE_COLUMNS``."""
    return (*session_params(s), *chain_params(head), s.jkt)


def rotate_params(session: SessionRecord, chain: Chain, now: float) -> tuple[object, ...]:
    """The session moved to ``chain``'s head, if its head is still ``session``'s (see ``Dialect.rotate``)."""
    head = chain.head
    return (
        head.jti,
        head.gen,
        head.kid,
        head.issued_at,
        head.expires_at,
        chain.recent,
        now,
        session.sid,
        session.head_jti,
    )


def key_params(k: StoredKey) -> tuple[object, ...]:
    return (k.kid, k.use, k.alg, k.material, k.public_jwk, k.created_at, k.active)


def _values(columns: str) -> str:
    return ", ".join(["%s"] * len(columns.split(",")))


# -- the dialect -----------------------------------------------------------------------------------


class Dialect:
    """The statements of one SQL dialect: the shared ones in its placeholders, and what differs."""

    placeholder: ClassVar[str] = "%s"
    lock_session: ClassVar[str] = ""
    """Appended to the refresh's read of the session: the row lock, where the database has one."""
    session_order: ClassVar[str] = "ORDER BY created_at"
    key_order: ClassVar[str] = "ORDER BY created_at"
    revocation_head: ClassVar[str]
    """One row, one column: the newest revocation's number ever given (``NULL`` or no row: none)."""

    def __init__(self) -> None:
        s = self.sql
        self.insert_session = s(f"INSERT INTO sessions ({STATE_COLUMNS}) VALUES ({_values(STATE_COLUMNS)})")
        self.insert_key = s(f"INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES ({_values(KEY_COLUMNS)})")
        self.select_session = s(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE sid = %s")
        self.select_state = s(f"SELECT {STATE_COLUMNS} FROM sessions WHERE sid = %s")
        self.select_state_locked = self.select_state + self.lock_session
        # The same, with whether a user may hold a session (the built-in users' subject check) last.
        self.select_state_and_user = s(f"SELECT {STATE_COLUMNS}, {USER_ALLOWED} FROM sessions WHERE sid = %s")
        self.select_state_and_user_locked = self.select_state_and_user + self.lock_session
        # A rotation: one statement, which changes nothing unless the head is still the one decided on.
        self.rotate = s(
            "UPDATE sessions SET head_jti = %s, gen = %s, head_kid = %s, head_issued_at = %s, "
            "head_expires_at = %s, rotated = %s, last_seen_at = %s "
            "WHERE sid = %s AND head_jti = %s AND state = 'active'"
        )
        self.sessions_of = s(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE sub = %s")
        self.all_sessions = f"SELECT {SESSION_COLUMNS} FROM sessions"
        self.active_sids_of = s(
            f"SELECT sid FROM sessions WHERE sub = %s AND state = 'active' {self.session_order}"
        )
        self.revoke = s(
            "UPDATE sessions SET state = 'revoked', revoked_reason = %s, revoked_at = %s "
            "WHERE sid = %s AND state = 'active'"
        )
        # Where rows are locked (PostgreSQL): sessions' row locks taken in sid order, the order a batch of
        # rotations takes them in (``_pg_batch``), so that revoking several never waits in a cycle.
        self.lock_sessions = (
            s(f"SELECT 1 FROM sessions WHERE sid = ANY(%s) ORDER BY sid{self.lock_session}")
            if self.lock_session
            else ""
        )
        self.insert_revocation = s("INSERT INTO revocations (kind, value, expires_at) VALUES (%s, %s, %s)")
        self.access_token_revoked = s(
            "SELECT 1 FROM revocations WHERE value = %s AND kind = 'jti' AND expires_at > %s"
        )
        self.revocations_since = s(
            f"SELECT {REVOCATION_COLUMNS} FROM revocations "
            "WHERE seq > %s AND expires_at > %s ORDER BY seq LIMIT %s"
        )
        self.prune = [
            s("DELETE FROM rate_limits WHERE tat <= %s"),
            s("DELETE FROM sessions WHERE absolute_expires_at <= %s"),
            s("DELETE FROM revocations WHERE expires_at <= %s"),
            s("DELETE FROM dpop_proofs WHERE expires_at <= %s"),
        ]
        # A DPoP proof's jti, remembered once: a row that is there and unexpired changes nothing (count 0).
        self.use_dpop_jti = s(
            "INSERT INTO dpop_proofs (key, expires_at) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE "
            "SET expires_at = excluded.expires_at WHERE dpop_proofs.expires_at <= %s"
        )
        self.list_keys = f"SELECT {KEY_COLUMNS} FROM signing_keys {self.key_order}"
        self.active_key = s("SELECT 1 FROM signing_keys WHERE use = %s AND alg = %s AND active")
        self.delete_key = s("DELETE FROM signing_keys WHERE kid = %s")
        self.select_user = s(f"SELECT {USER_COLUMNS} FROM users WHERE username = %s")
        self.add_user = s(
            f"INSERT INTO users ({USER_COLUMNS}) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"
        )
        self.update_user = s(
            "UPDATE users SET password_hash = COALESCE(%s, password_hash), "
            "disabled = COALESCE(%s, disabled) WHERE username = %s"
        )
        self.list_users = f"SELECT {USER_COLUMNS} FROM users ORDER BY username"
        self.select_client = s(f"SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = %s")
        self.add_client = s(
            f"INSERT INTO oauth_clients ({CLIENT_COLUMNS}) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"
        )
        self.remove_client = s("DELETE FROM oauth_clients WHERE client_id = %s")
        self.list_clients = f"SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY client_id"

    def sql(self, text: str) -> str:
        """A shared statement (``%s`` placeholders) in this dialect's placeholders."""
        return text.replace("%s", self.placeholder)

    def storable(self, text: str) -> bool:
        """Whether a text column can hold ``text``; looking up one that cannot finds nothing."""
        return True

    def take(self, key: str, limit: RateLimit, now: float) -> Flow[RateLimitResult]:
        """One call from the rate-limit bucket ``key`` (GCRA, as ``RateLimit.take``), atomically."""
        raise NotImplementedError

    def take_and_read(
        self, sid: str, limits: Sequence[RateLimitTake], user: str | None = None
    ) -> Flow[tuple[Limited | None, Row | None]]:
        """``limits`` taken in order (``take_all``), then, unless one refused, the session's state read
        (``read_state``, unlocked): the first refusal and the row. A dialect may do it in one statement."""
        limited = yield from take_all(self, limits)
        if limited is not None:
            return limited, None
        return None, (yield self.read_state(sid, user, locked=False))

    def read_state(self, sid: str, user: str | None, *, locked: bool) -> Query:
        """The session's state (``STATE_COLUMNS``), locked where the dialect locks rows and ``locked``
        asks; with ``user``, whether that user may hold a session after it (``USER_ALLOWED``)."""
        if user is None:
            return Query(self.select_state_locked if locked else self.select_state, (sid,), "one")
        if not self.storable(user):  # no such user can be stored: ask for one that cannot exist
            user = ""
        query = self.select_state_and_user_locked if locked else self.select_state_and_user
        return Query(query, (user, sid), "one")

    def take_turn(self, table: str) -> Flow[None]:
        """Wait for other writers of ``table`` (the feed, the keys) and hold the turn until commit."""
        yield from ()

    def add_revocation(self, kind: Literal["sid", "jti"], value: str, expires_at: float) -> Flow[None]:
        """Append to the feed (in turn: see ``take_turn``); a ``jti`` is recorded once."""
        yield Query(self.insert_revocation, (kind, value, expires_at))


def take_all(d: Dialect, limits: Sequence[RateLimitTake]) -> Flow[Limited | None]:
    """One call from each bucket of ``limits`` in order; the first refusal, if one refuses."""
    for take in limits:
        taken = yield from d.take(take.key, take.limit, take.now)
        if not taken.allowed:
            return Limited(take, taken.retry_after)
    return None
