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
    RateLimitResult,
    RefreshRecord,
    Revocation,
    Rotate,
    SessionRecord,
    StoredKey,
    UserRecord,
)

T = TypeVar("T")

SESSION_COLUMNS = (
    "sid, sub, created_at, absolute_expires_at, head_jti, gen, last_seen_at, state, "
    "revoked_reason, revoked_at, user_agent, ip, client_id, claims"
)
REFRESH_COLUMNS = "jti, sid, gen, kid, issued_at, expires_at, rotated_at"
REVOCATION_COLUMNS = "seq, kind, value, expires_at"
KEY_COLUMNS = "kid, use, alg, material, public_jwk, created_at, active"
USER_COLUMNS = "username, password_hash, created_at, disabled"

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
    sid, sub, created, ends, head_jti, gen, seen, state, reason, revoked_at, agent, ip, client, claims = row
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
        json.loads(claims),
    )


def refresh_from(row: Row) -> RefreshRecord:
    return RefreshRecord(*row)


def revocation_from(row: Row) -> Revocation:
    return Revocation(*row)


def key_from(row: Row) -> StoredKey:
    kid, use, alg, material, public_jwk, created_at, active = row
    return StoredKey(kid, use, alg, bytes(material), public_jwk, created_at, bool(active))


def user_from(row: Row) -> UserRecord:
    username, password_hash, created_at, disabled = row
    return UserRecord(username, password_hash, created_at, bool(disabled))


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


def refresh_params(r: RefreshRecord) -> tuple[object, ...]:
    return (r.jti, r.sid, r.gen, r.kid, r.issued_at, r.expires_at, r.rotated_at)


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
    prune_refresh: ClassVar[str]
    """Delete the refresh records expired at ``%s`` or whose session is gone."""

    def __init__(self) -> None:
        s = self.sql
        self.insert_session = s(
            f"INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ({_values(SESSION_COLUMNS)})"
        )
        self.insert_refresh = s(
            f"INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) VALUES ({_values(REFRESH_COLUMNS)})"
        )
        self.insert_key = s(f"INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES ({_values(KEY_COLUMNS)})")
        self.select_session = s(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE sid = %s")
        self.select_session_locked = self.select_session + self.lock_session
        self.select_refresh = s(f"SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE jti = %s")
        self.spend_refresh = s("UPDATE refresh_tokens SET rotated_at = %s WHERE jti = %s")
        self.move_session = s("UPDATE sessions SET head_jti = %s, gen = %s, last_seen_at = %s WHERE sid = %s")
        self.sessions_of = s(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE sub = %s")
        self.all_sessions = f"SELECT {SESSION_COLUMNS} FROM sessions"
        self.active_sids_of = s(
            f"SELECT sid FROM sessions WHERE sub = %s AND state = 'active' {self.session_order}"
        )
        self.revoke = s(
            "UPDATE sessions SET state = 'revoked', revoked_reason = %s, revoked_at = %s "
            "WHERE sid = %s AND state = 'active'"
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
            s(self.prune_refresh),
            s("DELETE FROM revocations WHERE expires_at <= %s"),
        ]
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

    def sql(self, text: str) -> str:
        """A shared statement (``%s`` placeholders) in this dialect's placeholders."""
        return text.replace("%s", self.placeholder)

    def storable(self, text: str) -> bool:
        """Whether a text column can hold ``text``; looking up one that cannot finds nothing."""
        return True

    def rotate(self, session: SessionRecord, decision: Rotate) -> Flow[None]:
        """Spend the old head, add the new one, move the session to it."""
        head, now = decision.new_head, decision.now
        yield Query(self.spend_refresh, (now, session.head_jti))
        yield Query(self.insert_refresh, refresh_params(head))
        yield Query(self.move_session, (head.jti, head.gen, now, session.sid))

    def take(self, key: str, limit: RateLimit, now: float) -> Flow[RateLimitResult]:
        """One call from the rate-limit bucket ``key`` (GCRA, as ``RateLimit.take``), atomically."""
        raise NotImplementedError

    def take_turn(self, table: str) -> Flow[None]:
        """Wait for other writers of ``table`` (the feed, the keys) and hold the turn until commit."""
        yield from ()

    def add_revocation(self, kind: Literal["sid", "jti"], value: str, expires_at: float) -> Flow[None]:
        """Append to the feed (in turn: see ``take_turn``); a ``jti`` is recorded once."""
        yield Query(self.insert_revocation, (kind, value, expires_at))
