"""Records as the Redis store keeps them, and back: hash words, key JSON, feed members, script replies.

Floats are written with ``repr`` and read with ``float``, so they come back exactly. A reply that does not
decode raises ``StoreUnavailable`` (never a ``KeyError`` or ``TypeError`` from deep inside).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Literal, TypeVar, cast, get_args

from redis.exceptions import RedisError

from ...errors import StoreUnavailable
from ...typing import (
    ClientRecord,
    KeyUse,
    RefreshRecord,
    Revocation,
    RevokedReason,
    SessionRecord,
    SessionState,
    StoredKey,
    UserRecord,
)
from .._chain import Chain

SAFETY_TTL_MARGIN = 86_400
"""Seconds a record outlives its own lifetime before Redis drops it even if ``prune`` never ran."""

T = TypeVar("T")


# -- errors ----------------------------------------------------------------------------------------


REPLY_TIMEOUT = 6.0
"""Seconds one call may take, from taking a connection to its last reply (as the PostgreSQL store's
``CALL_TIMEOUT_S``): a down server answers at once, a silent one is given up on after this, and a busy
machine does not turn a slow reply into an outage."""


class guarded:
    """One call to the server outside the batches (``_batches``, which have a timer of their own),
    bounded by :data:`REPLY_TIMEOUT`: driver errors (connection refused or lost, error replies) and a call
    that runs out of time become ``StoreUnavailable``.

    The client has no ``socket_timeout`` of its own: redis-py would bound each command's send with
    ``asyncio.wait_for``, a task per command. This one timer bounds the whole call instead.
    """

    __slots__ = ("_timeout",)

    def __init__(self) -> None:
        self._timeout = asyncio.timeout(REPLY_TIMEOUT)

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._timeout.__aexit__(kind, exc, tb)
        except TimeoutError as late:
            raise StoreUnavailable() from late
        if isinstance(exc, RedisError):
            raise StoreUnavailable() from exc


def malformed() -> StoreUnavailable:
    return StoreUnavailable("Redis holds a record this Keyturn cannot read.")


# -- encoding ----------------------------------------------------------------------------------------


def float_text(value: float) -> str:
    return repr(float(value))


def bool_text(value: bool) -> str:
    return "1" if value else "0"


def ttl(lifetime: float) -> int:
    """A safety-net TTL: the record's own lifetime plus a margin, as a duration from now."""
    return max(0, math.ceil(lifetime)) + SAFETY_TTL_MARGIN


def session_words(session: SessionRecord) -> list[str]:
    fields: dict[str, str | None] = {
        "sid": session.sid,
        "sub": session.sub,
        "created_at": float_text(session.created_at),
        "absolute_expires_at": float_text(session.absolute_expires_at),
        "head_jti": session.head_jti,
        "gen": str(session.gen),
        "last_seen_at": float_text(session.last_seen_at),
        "state": session.state,
        "revoked_reason": session.revoked_reason,
        "revoked_at": None if session.revoked_at is None else float_text(session.revoked_at),
        "user_agent": session.user_agent,
        "ip": session.ip,
        "client_id": session.client_id,
        "claims": json.dumps(session.claims),
        "jkt": session.jkt,
    }
    return words_of(fields)


def chain_words(chain: Chain) -> list[str]:
    """A session's refresh chain as hash words of the session's own hash (no record per token), but for
    ``head_jti`` and ``gen``, which ``session_words`` writes."""
    head = chain.head
    return [
        "head_kid",
        head.kid,
        "head_issued_at",
        str(head.issued_at),
        "head_expires_at",
        str(head.expires_at),
        "rotated",
        chain.recent,
    ]


def words_of(fields: Mapping[str, str | None]) -> list[str]:
    """Hash fields as ``HSET`` words; a ``None`` is left out (an absent field reads back as ``None``)."""
    return [word for name, value in fields.items() if value is not None for word in (name, value)]


def key_json(key: StoredKey) -> str:
    return json.dumps(
        {
            "kid": key.kid,
            "use": key.use,
            "alg": key.alg,
            "material": base64.b64encode(key.material).decode("ascii"),
            "public_jwk": key.public_jwk,
            "created_at": float_text(key.created_at),
            "active": key.active,
        }
    )


# -- decoding ----------------------------------------------------------------------------------------

_STATES: dict[str, SessionState] = {state: state for state in get_args(SessionState)}
_REASONS: dict[str, RevokedReason] = {reason: reason for reason in get_args(RevokedReason)}
_USES: dict[str, KeyUse] = {use: use for use in get_args(KeyUse)}
_KINDS: dict[str, Literal["sid", "jti"]] = {"sid": "sid", "jti": "jti"}


def as_list(reply: object) -> list[object]:
    if not isinstance(reply, list):
        raise malformed()
    return reply


def as_str(value: object) -> str:
    if not isinstance(value, str):
        raise malformed()
    return value


def as_int(value: object) -> int:
    if not isinstance(value, int):
        raise malformed()
    return value


def fields_of(reply: object) -> dict[str, str]:
    """A hash as ``HGETALL`` answers it: a dict from redis-py, a flat list from a script."""
    if isinstance(reply, dict):
        return {as_str(name): as_str(value) for name, value in reply.items()}
    words = as_list(reply)
    for word in words:  # read on every refresh: a loop, not a call per word
        if not isinstance(word, str):
            raise malformed()
    texts = cast(list[str], words)
    return dict(zip(texts[::2], texts[1::2], strict=False))  # an odd last word has no value: left out


def decode(read: Callable[[Mapping[str, str]], T], reply: object) -> T | None:
    """The record in ``reply`` (a hash), or ``None`` if the hash is empty (Redis: no such key)."""
    fields = fields_of(reply)
    if not fields:
        return None
    return decode_fields(read, fields)


def decode_fields(read: Callable[[Mapping[str, str]], T], fields: Mapping[str, str]) -> T:
    """The record ``read`` makes of a hash's fields, already read (``fields_of``'s); a field missing or
    unreadable (an empty hash too) makes it ``StoreUnavailable``."""
    try:
        return read(fields)
    except (KeyError, ValueError, TypeError) as exc:
        raise malformed() from exc


def required(read: Callable[[Mapping[str, str]], T], reply: object) -> T:
    found = decode(read, reply)
    if found is None:
        raise malformed()
    return found


def session_and_chain(fields: Mapping[str, str]) -> tuple[SessionRecord, Chain]:
    """A session and its refresh chain from the fields of its hash, read once for both (see
    :func:`decode_fields`)."""
    return session_from(fields), chain_from(fields)


def optional_float(value: str | None) -> float | None:
    return None if value is None else float(value)


def session_from(fields: Mapping[str, str]) -> SessionRecord:
    reason = fields.get("revoked_reason")
    return SessionRecord(
        sid=fields["sid"],
        sub=fields["sub"],
        created_at=float(fields["created_at"]),
        absolute_expires_at=float(fields["absolute_expires_at"]),
        head_jti=fields["head_jti"],
        gen=int(fields["gen"]),
        last_seen_at=float(fields["last_seen_at"]),
        state=_STATES[fields["state"]],
        revoked_reason=None if reason is None else _REASONS[reason],
        revoked_at=optional_float(fields.get("revoked_at")),
        user_agent=fields.get("user_agent"),
        ip=fields.get("ip"),
        client_id=fields.get("client_id"),
        claims=json.loads(fields["claims"]),
        jkt=fields.get("jkt"),
    )


def chain_from(fields: Mapping[str, str]) -> Chain:
    """The refresh chain kept in a session's hash (a session the migration found no record of has none:
    its head then has no key, and its token cannot be signed again)."""
    head = RefreshRecord(
        jti=fields["head_jti"],
        sid=fields["sid"],
        gen=int(fields["gen"]),
        kid=fields.get("head_kid", ""),
        issued_at=int(fields.get("head_issued_at", "0")),
        expires_at=int(fields.get("head_expires_at", "0")),
    )
    return Chain(head, fields.get("rotated") or "")


def user_from(fields: Mapping[str, str]) -> UserRecord:
    return UserRecord(
        username=fields["username"],
        password_hash=fields["password_hash"],
        created_at=float(fields["created_at"]),
        disabled=fields["disabled"] == "1",
    )


def client_from(fields: Mapping[str, str]) -> ClientRecord:
    return ClientRecord(
        client_id=fields["client_id"],
        created_at=float(fields["created_at"]),
        secret_hash=fields.get("secret_hash"),
        dpop="required" if fields.get("dpop") == "required" else "optional",
    )


def key_from(text: str) -> StoredKey:
    try:
        found = json.loads(text)
        public_jwk = found["public_jwk"]
        return StoredKey(
            kid=as_str(found["kid"]),
            use=_USES[found["use"]],
            alg=as_str(found["alg"]),
            material=base64.b64decode(as_str(found["material"]), validate=True),
            public_jwk=None if public_jwk is None else as_str(public_jwk),
            created_at=float(as_str(found["created_at"])),
            active=found["active"] is True,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise malformed() from exc


def decode_member(member: object) -> Revocation:
    """A feed member ``seq|kind|expires_at|value`` (the value may itself hold ``|``)."""
    try:
        seq, kind, expires_at, value = as_str(member).split("|", 3)
        return Revocation(int(seq), _KINDS[kind], value, float(expires_at))
    except (KeyError, ValueError) as exc:
        raise malformed() from exc
