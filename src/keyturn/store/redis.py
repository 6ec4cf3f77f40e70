"""``redis://host:port/db?prefix=keyturn:`` (or ``rediss://``): a store on one Redis server.

Atomicity. Every write is one Lua script (sent with ``EVALSHA``, loaded again if the server lost it), and
Redis runs a script without interleaving any other command, so each is all or nothing as seen by others.
Reads that need more than one key (a listing, a session with its head) are Lua scripts too.
``refresh`` keeps the decision in Python: one script reads the session, the presented record and the
current head together; ``decide`` runs on that snapshot; a Rotate or a Reuse is then applied by a script
that first checks that the session's ``head_jti`` and ``state`` are still what was read (a
compare-and-set) and otherwise changes nothing, so the caller reads and decides again. A Replay or a
Reject writes nothing and answers from the snapshot, which one script read consistently. A refresh's
rate-limit takes are made by the first reading script, before it reads anything, and never again by a
second one.

Key layout (``{p}`` is the prefix, ``keyturn:`` by default; every key starts with it):

===========================  ======  ==========================================================
``{p}s:{sid}``               hash    a session (absent fields are ``None``; ``claims`` is JSON)
``{p}sessions``              zset    every session id, scored by ``created_at`` (listing order)
``{p}sessions:exp``          zset    every session id, scored by ``absolute_expires_at`` (pruning)
``{p}sub:{sub}``             zset    the session ids of one subject, scored by ``created_at``
``{p}r:{jti}``               hash    a refresh record
``{p}sj:{sid}``              set     the refresh jtis of one session (to prune them with it)
``{p}refresh:exp``           zset    every refresh jti, scored by ``expires_at`` (pruning)
``{p}rev:seq``               string  the last revocation sequence number (``INCR``)
``{p}rev``                   zset    the revocation feed, scored by ``seq``; members are
                                     ``seq|kind|expires_at|value``
``{p}rev:exp``               zset    the same members, scored by ``expires_at`` (pruning)
``{p}rev:jti``               zset    revoked access-token jtis, scored by ``expires_at``
``{p}keys``                  hash    signing keys: ``kid`` to JSON (material in base64)
``{p}keys:order``            zset    kids in the order they were added; ``{p}keys:seq`` counts
``{p}u:{username}``          hash    a user; ``{p}users`` (set) holds every username
``{p}rl:{key}``              string  a rate-limit bucket: its GCRA theoretical arrival time in
                                     microseconds, expiring when the bucket is full again
===========================  ======  ==========================================================

Floats are written with ``repr`` and read with ``float``, so they come back exactly. ``prune(now)``
removes expired entries explicitly, by the ``now`` it is given, and counts what ``SQLiteStore.prune``
counts (sessions, refresh records, revocation entries). Sessions, their refresh-id sets, per-subject
indexes and refresh records also carry a TTL, as a safety net only: a duration (the record's lifetime plus
a day) counted from when it was written, never an absolute time taken from the record, so records written
with a test's frozen clock live as long as they should.

Scripts build the keys of index members (``{p}s:{sid}`` for each sid of a listing, say) from the prefix,
so the store needs one Redis server (replicas are fine); for Redis Cluster every key would need one slot.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Literal, TypeVar, get_args
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError
from redis.maint_notifications import MaintNotificationsConfig

from ..errors import StoreUnavailable
from ..ratelimit import RateLimit, micros
from ..typing import (
    MICROSECONDS,
    Decide,
    KeyUse,
    Limited,
    RateLimitResult,
    RateLimitTake,
    RefreshOutcome,
    RefreshRecord,
    Replay,
    Reuse,
    Revocation,
    RevokedReason,
    Rotate,
    SessionRecord,
    SessionState,
    StoredKey,
    UserRecord,
)

DEFAULT_PREFIX = "keyturn:"
CONNECT_TIMEOUT = 3.0
"""Seconds to wait for a connection, and for each reply: a down server answers fast."""
SAFETY_TTL_MARGIN = 86_400
"""Seconds a record outlives its own lifetime before Redis drops it even if ``prune`` never ran."""
MAX_REFRESH_TRIES = 100
PRUNE_BATCH = 1000
"""Entries of each kind one prune script removes, so no script blocks the server for long."""

_SCHEMES = ("redis", "rediss", "unix")

T = TypeVar("T")

# -- Lua ---------------------------------------------------------------------------------------------
# Every script takes the key prefix as ARGV[1].

_LUA_COMMON = """
local P = ARGV[1]

local function keep_at_least(key, ttl)
  if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
end

local function add_revocation(kind, value, expires_at)
  local seq = string.format('%d', redis.call('INCR', P .. 'rev:seq'))
  local member = seq .. '|' .. kind .. '|' .. expires_at .. '|' .. value
  redis.call('ZADD', P .. 'rev', seq, member)
  redis.call('ZADD', P .. 'rev:exp', expires_at, member)
end

local function revoke(sid, reason, now, expires_at)
  local key = P .. 's:' .. sid
  if redis.call('HGET', key, 'state') ~= 'active' then return false end
  redis.call('HSET', key, 'state', 'revoked', 'revoked_reason', reason, 'revoked_at', now)
  add_revocation('sid', sid, expires_at)
  return true
end

-- One call from the rate-limit bucket (GCRA as RateLimit.take; integers, microseconds): 0 and the bucket
-- moved on, or the microseconds to wait and nothing written. The bucket expires when it is full again
-- (its TAT), as a duration from the caller's now, so a test's frozen clock works too.
local function take(name, now, t, tau)
  local key = P .. 'rl:' .. name
  now, t, tau = tonumber(now), tonumber(t), tonumber(tau)
  local tat = tonumber(redis.call('GET', key) or now) or now
  if tat < now then tat = now end
  local new = tat + t
  local wait = new - tau - now
  if wait > 0 then return wait end
  redis.call('SET', key, string.format('%d', new), 'PX', math.ceil((new - now) / 1000))
  return 0
end

local function unchanged(sid, head_jti, state)
  local seen = redis.call('HMGET', P .. 's:' .. sid, 'head_jti', 'state')
  return seen[1] == head_jti and seen[2] == state
end

local function write_refresh(first, last, jti, sid, expires_at, ttl)
  local key = P .. 'r:' .. jti
  redis.call('HSET', key, unpack(ARGV, first, last))
  redis.call('EXPIRE', key, ttl)
  redis.call('ZADD', P .. 'refresh:exp', expires_at, jti)
  local ids = P .. 'sj:' .. sid
  redis.call('SADD', ids, jti)
  keep_at_least(ids, ttl)
end
"""

# ARGV: P, sid, sub, created_at, absolute_expires_at, session ttl, jti, record sid, expires_at,
# record ttl, number of session hash words n, n session words, then the record's words.
_CREATE_SESSION = """
local sid, sub, created, ends, sttl = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local jti, rsid, rexp, rttl = ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10])
local n = tonumber(ARGV[11])
local skey = P .. 's:' .. sid
if redis.call('EXISTS', skey) == 1 or redis.call('EXISTS', P .. 'r:' .. jti) == 1 then return 0 end
redis.call('HSET', skey, unpack(ARGV, 12, 11 + n))
redis.call('EXPIRE', skey, sttl)
redis.call('ZADD', P .. 'sessions', created, sid)
redis.call('ZADD', P .. 'sessions:exp', ends, sid)
local byuser = P .. 'sub:' .. sub
redis.call('ZADD', byuser, created, sid)
keep_at_least(byuser, sttl)
write_refresh(12 + n, #ARGV, jti, rsid, rexp, rttl)
keep_at_least(P .. 'sj:' .. sid, sttl)
return 1
"""

# ARGV: P, sid, jti, number of rate-limit takes n, then n times: key, now, interval, tolerance. Returns
# {session, presented record, head record unless it is the presented one}, or, if take number i refused,
# {{}, {}, {}, i, microseconds to wait} and nothing read (the takes before it stand).
_READ_REFRESH = """
local sid, jti = ARGV[2], ARGV[3]
for i = 1, tonumber(ARGV[4]) do
  local at = 1 + 4 * i
  local wait = take(ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3])
  if wait > 0 then return {{}, {}, {}, i, wait} end
end
local skey = P .. 's:' .. sid
local session = redis.call('HGETALL', skey)
local presented = redis.call('HGETALL', P .. 'r:' .. jti)
local head = {}
if #session > 0 then
  local head_jti = redis.call('HGET', skey, 'head_jti')
  if head_jti ~= jti then head = redis.call('HGETALL', P .. 'r:' .. head_jti) end
end
return {session, presented, head}
"""

# ARGV: P, sid, expected head_jti, expected state, now, new jti, new record's sid, gen, expires_at,
# record ttl, then the new record's words. 1 done, 0 the session changed, -1 the new jti exists.
_ROTATE = """
local sid, old, state, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local jti, rsid, gen, rexp, rttl = ARGV[6], ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10])
if not unchanged(sid, old, state) then return 0 end
if redis.call('EXISTS', P .. 'r:' .. jti) == 1 then return -1 end
local oldkey = P .. 'r:' .. old
if redis.call('EXISTS', oldkey) == 1 then redis.call('HSET', oldkey, 'rotated_at', now) end
write_refresh(11, #ARGV, jti, rsid, rexp, rttl)
redis.call('HSET', P .. 's:' .. sid, 'head_jti', jti, 'gen', gen, 'last_seen_at', now)
return 1
"""

# ARGV: P, sid, expected head_jti, expected state, now, revocation expires_at. 1 done, 0 changed.
_REUSE = """
if not unchanged(ARGV[2], ARGV[3], ARGV[4]) then return 0 end
revoke(ARGV[2], 'reuse', ARGV[5], ARGV[6])
return 1
"""

# ARGV: P, sid, reason, now, revocation expires_at.
_REVOKE_SESSION = """
if revoke(ARGV[2], ARGV[3], ARGV[4], ARGV[5]) then return 1 end
return 0
"""

# ARGV: P, sub, reason, now, revocation expires_at. Returns the revoked sids, oldest session first.
_REVOKE_SUBJECT = """
local done = {}
for _, sid in ipairs(redis.call('ZRANGE', P .. 'sub:' .. ARGV[2], 0, -1)) do
  if revoke(sid, ARGV[3], ARGV[4], ARGV[5]) then table.insert(done, sid) end
end
return done
"""

# ARGV: P, jti, expires_at.
_REVOKE_ACCESS_TOKEN = """
local jti, expires_at = ARGV[2], ARGV[3]
if redis.call('ZSCORE', P .. 'rev:jti', jti) then return 0 end
redis.call('ZADD', P .. 'rev:jti', expires_at, jti)
add_revocation('jti', jti, expires_at)
return 1
"""

# ARGV: P, now, batch. Returns {entries removed, 1 if a batch was full and there may be more}.
_PRUNE = """
local now, batch = ARGV[2], tonumber(ARGV[3])
local count, more = 0, 0
local sids = redis.call('ZRANGEBYSCORE', P .. 'sessions:exp', '-inf', now, 'LIMIT', 0, batch)
if #sids == batch then more = 1 end
for _, sid in ipairs(sids) do
  local skey = P .. 's:' .. sid
  local sub = redis.call('HGET', skey, 'sub')
  count = count + redis.call('DEL', skey)
  redis.call('ZREM', P .. 'sessions', sid)
  redis.call('ZREM', P .. 'sessions:exp', sid)
  if sub then redis.call('ZREM', P .. 'sub:' .. sub, sid) end
  local ids = P .. 'sj:' .. sid
  for _, jti in ipairs(redis.call('SMEMBERS', ids)) do
    count = count + redis.call('DEL', P .. 'r:' .. jti)
    redis.call('ZREM', P .. 'refresh:exp', jti)
  end
  redis.call('DEL', ids)
end
local jtis = redis.call('ZRANGEBYSCORE', P .. 'refresh:exp', '-inf', now, 'LIMIT', 0, batch)
if #jtis == batch then more = 1 end
for _, jti in ipairs(jtis) do
  local rkey = P .. 'r:' .. jti
  local sid = redis.call('HGET', rkey, 'sid')
  count = count + redis.call('DEL', rkey)
  redis.call('ZREM', P .. 'refresh:exp', jti)
  if sid then redis.call('SREM', P .. 'sj:' .. sid, jti) end
end
local gone = redis.call('ZRANGEBYSCORE', P .. 'rev:exp', '-inf', now, 'LIMIT', 0, batch)
if #gone == batch then more = 1 end
for _, member in ipairs(gone) do
  redis.call('ZREM', P .. 'rev', member)
  count = count + redis.call('ZREM', P .. 'rev:exp', member)
  local kind, value = string.match(member, '^%d+|(%a+)|[^|]*|(.*)$')
  if kind == 'jti' then redis.call('ZREM', P .. 'rev:jti', value) end
end
return {count, more}
"""

# ARGV: P, key, now, interval, tolerance (integers, microseconds). 0 taken, or microseconds to wait.
_RATE_LIMIT_TAKE = """
return take(ARGV[2], ARGV[3], ARGV[4], ARGV[5])
"""

# ARGV: P, index key (without prefix), '1' to include revoked sessions. Returns session hashes.
_LIST_SESSIONS = """
local found = {}
for _, sid in ipairs(redis.call('ZRANGE', P .. ARGV[2], 0, -1)) do
  local key = P .. 's:' .. sid
  local state = redis.call('HGET', key, 'state')
  if state == 'active' or (state and ARGV[3] == '1') then
    table.insert(found, redis.call('HGETALL', key))
  end
end
return found
"""

# ARGV: P, number of candidates n, then n times: kid, use, alg, '1' if active, JSON.
# Returns {1, every key's JSON in the order added}, or {0} if a kid to add is taken (nothing added).
_ENSURE_KEYS = """
local all, order, seq = P .. 'keys', P .. 'keys:order', P .. 'keys:seq'
local taken, active = {}, {}
for _, text in ipairs(redis.call('HVALS', all)) do
  local key = cjson.decode(text)
  taken[key.kid] = true
  if key.active == true then active[key.use .. '\\n' .. key.alg] = true end
end
local adds = {}
for i = 0, tonumber(ARGV[2]) - 1 do
  local at = 3 + 5 * i
  local kid, kind = ARGV[at], ARGV[at + 1] .. '\\n' .. ARGV[at + 2]
  if not active[kind] then
    if taken[kid] then return {0} end
    taken[kid] = true
    if ARGV[at + 3] == '1' then active[kind] = true end
    table.insert(adds, at)
  end
end
for _, at in ipairs(adds) do
  redis.call('ZADD', order, redis.call('INCR', seq), ARGV[at])
  redis.call('HSET', all, ARGV[at], ARGV[at + 4])
end
local kids = redis.call('ZRANGE', order, 0, -1)
if #kids == 0 then return {1, {}} end
return {1, redis.call('HMGET', all, unpack(kids))}
"""

# ARGV: P, then kid and JSON of each key. 1 added all, 0 a kid is taken (nothing added).
_ADD_KEYS = """
local all, order, seq = P .. 'keys', P .. 'keys:order', P .. 'keys:seq'
local seen = {}
for i = 2, #ARGV, 2 do
  if seen[ARGV[i]] or redis.call('HEXISTS', all, ARGV[i]) == 1 then return 0 end
  seen[ARGV[i]] = true
end
for i = 2, #ARGV, 2 do
  redis.call('ZADD', order, redis.call('INCR', seq), ARGV[i])
  redis.call('HSET', all, ARGV[i], ARGV[i + 1])
end
return 1
"""

# ARGV: P, then the ids of the keys to delete.
_DELETE_KEYS = """
local deleted = 0
for i = 2, #ARGV do
  deleted = deleted + redis.call('HDEL', P .. 'keys', ARGV[i])
  redis.call('ZREM', P .. 'keys:order', ARGV[i])
end
return deleted
"""

# ARGV: P, username, then the user's hash words.
_ADD_USER = """
local key = P .. 'u:' .. ARGV[2]
if redis.call('EXISTS', key) == 1 then return 0 end
redis.call('HSET', key, unpack(ARGV, 3))
redis.call('SADD', P .. 'users', ARGV[2])
return 1
"""

# ARGV: P, username, then the hash words to change (maybe none).
_UPDATE_USER = """
local key = P .. 'u:' .. ARGV[2]
if redis.call('EXISTS', key) == 0 then return 0 end
if #ARGV > 2 then redis.call('HSET', key, unpack(ARGV, 3)) end
return 1
"""

# ARGV: P. Returns every user's hash.
_LIST_USERS = """
local found = {}
for _, name in ipairs(redis.call('SMEMBERS', P .. 'users')) do
  local user = redis.call('HGETALL', P .. 'u:' .. name)
  if #user > 0 then table.insert(found, user) end
end
return found
"""


@dataclasses.dataclass(frozen=True, slots=True)
class _Scripts:
    create_session: AsyncScript
    read_refresh: AsyncScript
    rotate: AsyncScript
    reuse: AsyncScript
    revoke_session: AsyncScript
    revoke_subject: AsyncScript
    revoke_access_token: AsyncScript
    prune: AsyncScript
    list_sessions: AsyncScript
    ensure_keys: AsyncScript
    delete_keys: AsyncScript
    add_keys: AsyncScript
    add_user: AsyncScript
    update_user: AsyncScript
    list_users: AsyncScript
    rate_limit_take: AsyncScript

    @classmethod
    def on(cls, client: redis.asyncio.Redis) -> _Scripts:
        sources = {
            "create_session": _CREATE_SESSION,
            "read_refresh": _READ_REFRESH,
            "rotate": _ROTATE,
            "reuse": _REUSE,
            "revoke_session": _REVOKE_SESSION,
            "revoke_subject": _REVOKE_SUBJECT,
            "revoke_access_token": _REVOKE_ACCESS_TOKEN,
            "prune": _PRUNE,
            "list_sessions": _LIST_SESSIONS,
            "ensure_keys": _ENSURE_KEYS,
            "add_keys": _ADD_KEYS,
            "delete_keys": _DELETE_KEYS,
            "add_user": _ADD_USER,
            "update_user": _UPDATE_USER,
            "list_users": _LIST_USERS,
            "rate_limit_take": _RATE_LIMIT_TAKE,
        }
        return cls(**{name: client.register_script(_LUA_COMMON + body) for name, body in sources.items()})


# -- the store -----------------------------------------------------------------------------------------


def split_url(url: str) -> tuple[str, str]:
    """``redis://…?prefix=p&…`` to the URL without ``prefix`` and the prefix (default ``keyturn:``)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in _SCHEMES:
        raise ValueError(f"not a redis://, rediss:// or unix:// URL: {parts.scheme}://…")
    prefix = DEFAULT_PREFIX
    rest: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "prefix":
            prefix = value
        else:
            rest.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(rest))), prefix


class RedisStore:
    """A store on one Redis server, shared by any number of processes."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        """``url`` as ``redis.asyncio.Redis.from_url`` takes it; every key starts with ``prefix``."""
        self._url = url  # may hold a password: kept private, never shown
        self.prefix = prefix
        self._client: redis.asyncio.Redis | None = None
        self._scripts: _Scripts | None = None

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """``redis://…`` or ``rediss://…``, with an optional ``prefix`` query parameter."""
        plain, prefix = split_url(url)
        return cls(plain, prefix=prefix)

    # -- plumbing --------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._client is not None:
            return
        client = redis.asyncio.Redis.from_url(
            self._url,
            decode_responses=True,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=CONNECT_TIMEOUT,
            # No blind retries: a script sent again after a lost reply could apply twice. A pooled
            # connection the server has closed (a restart) is replaced when it is next taken from the
            # pool; redis-py skips that check while maintenance notifications (a Redis Enterprise
            # feature) are on, and their default, "auto", counts as on.
            retry=Retry(NoBackoff(), 0),
            maint_notifications_config=MaintNotificationsConfig(enabled=False),
        )
        try:
            await client.ping()
        except RedisError as exc:
            await _close_quietly(client)
            raise StoreUnavailable(f"cannot reach Redis at {self._where()}: {exc}") from exc
        self._client, self._scripts = client, _Scripts.on(client)

    async def close(self) -> None:
        client, self._client, self._scripts = self._client, None, None
        if client is not None:
            await _close_quietly(client)

    async def ping(self) -> None:
        with _guarded():
            await self._open_client().ping()

    def _where(self) -> str:
        """Where the server is, for messages: host and port (or socket path), never credentials."""
        parts = urlsplit(self._url)
        if parts.scheme.lower() == "unix":
            return parts.path
        return f"{parts.hostname}:{parts.port or 6379}"

    def _open_client(self) -> redis.asyncio.Redis:
        if self._client is None:
            raise RuntimeError("the store is not open")
        return self._client

    @property
    def _lua(self) -> _Scripts:
        if self._scripts is None:
            raise RuntimeError("the store is not open")
        return self._scripts

    async def _run(self, script: AsyncScript, *args: str | int) -> object:
        """Run ``script`` with the prefix as ``ARGV[1]`` and ``args`` after it."""
        with _guarded():
            reply: object = await script(args=[self.prefix, *args])
        return reply

    # -- sessions ------------------------------------------------------------------------------

    async def create_session(self, session: SessionRecord, head: RefreshRecord) -> None:
        words = _session_words(session)
        done = await self._run(
            self._lua.create_session,
            session.sid,
            session.sub,
            _float(session.created_at),
            _float(session.absolute_expires_at),
            _ttl(session.absolute_expires_at - session.created_at),
            head.jti,
            head.sid,
            str(head.expires_at),
            _ttl(head.expires_at - head.issued_at),
            len(words),
            *words,
            *_refresh_words(head),
        )
        if done != 1:
            raise ValueError("a session or refresh token with this id already exists")

    async def refresh(
        self, sid: str, jti: str, decide: Decide, takes: Sequence[RateLimitTake] = ()
    ) -> RefreshOutcome:
        words: list[str | int] = [len(takes)]
        for take in takes:
            words += [take.key, micros(take.now), take.limit.interval_us, take.limit.tolerance_us]
        for _ in range(MAX_REFRESH_TRIES):
            reply = _list(await self._run(self._lua.read_refresh, sid, jti, *words))
            if len(reply) > 3:  # a take refused: nothing was read
                refused = takes[_int(reply[3]) - 1]
                return RefreshOutcome(Limited(refused, _int(reply[4]) / MICROSECONDS), None, None)
            words = [0]  # taken once: a second read (the session changed meanwhile) takes nothing
            session = _decode(_session, reply[0])
            presented = _decode(_refresh, reply[1])
            decision = decide(session, presented)
            if session is None:
                return RefreshOutcome(decision, None, None)
            if isinstance(decision, Rotate):
                head = decision.new_head
                done = await self._run(
                    self._lua.rotate,
                    sid,
                    session.head_jti,
                    session.state,
                    _float(decision.now),
                    head.jti,
                    head.sid,
                    str(head.gen),
                    str(head.expires_at),
                    _ttl(head.expires_at - head.issued_at),
                    *_refresh_words(head),
                )
                if done == -1:
                    raise ValueError("a refresh token with this id already exists")
                if done == 1:
                    session = dataclasses.replace(
                        session, head_jti=head.jti, gen=head.gen, last_seen_at=decision.now
                    )
                    return RefreshOutcome(decision, session, head)
                continue  # the session changed since it was read: read and decide again
            if isinstance(decision, Replay):
                # A replay is never of the head itself (that rotates), so the head is the third record read.
                return RefreshOutcome(decision, session, _decode(_refresh, reply[2]))
            if isinstance(decision, Reuse):
                done = await self._run(
                    self._lua.reuse,
                    sid,
                    session.head_jti,
                    session.state,
                    _float(decision.now),
                    _float(decision.revocation_expires_at),
                )
                if done != 1:
                    continue
                session = dataclasses.replace(
                    session, state="revoked", revoked_reason="reuse", revoked_at=decision.now
                )
                return RefreshOutcome(decision, session, None)
            return RefreshOutcome(decision, session, None)
        raise StoreUnavailable(f"session {sid} kept changing during {MAX_REFRESH_TRIES} refresh attempts")

    async def get_session(self, sid: str) -> SessionRecord | None:
        with _guarded():
            found: object = await self._open_client().hgetall(f"{self.prefix}s:{sid}")
        return _decode(_session, found)

    async def list_sessions(self, sub: str, *, include_revoked: bool = False) -> list[SessionRecord]:
        return await self._list_sessions(f"sub:{sub}", include_revoked)

    async def list_all_sessions(self, *, include_revoked: bool = False) -> list[SessionRecord]:
        return await self._list_sessions("sessions", include_revoked)

    async def _list_sessions(self, index: str, include_revoked: bool) -> list[SessionRecord]:
        reply = await self._run(self._lua.list_sessions, index, "1" if include_revoked else "0")
        return [_required(_session, found) for found in _list(reply)]

    async def revoke_session(
        self, sid: str, reason: RevokedReason, now: float, revocation_expires_at: float
    ) -> bool:
        done = await self._run(
            self._lua.revoke_session, sid, reason, _float(now), _float(revocation_expires_at)
        )
        return done == 1

    async def revoke_subject(
        self, sub: str, reason: RevokedReason, now: float, revocation_expires_at: float
    ) -> list[str]:
        reply = await self._run(
            self._lua.revoke_subject, sub, reason, _float(now), _float(revocation_expires_at)
        )
        return [_str(sid) for sid in _list(reply)]

    # -- revocations -----------------------------------------------------------------------------

    async def revoke_access_token(self, jti: str, expires_at: float) -> None:
        await self._run(self._lua.revoke_access_token, jti, _float(expires_at))

    async def is_access_token_revoked(self, jti: str, now: float) -> bool:
        with _guarded():
            score: object = await self._open_client().zscore(f"{self.prefix}rev:jti", jti)
        if score is None:
            return False
        if not isinstance(score, float | int | str):
            raise _malformed()
        return float(score) > now

    async def revocations_since(self, seq: int, now: float, limit: int = 1000) -> list[Revocation]:
        """Entries after ``seq`` not yet expired at ``now``, in order; read page by page.

        Each entry is written with its sequence number by one script, so a reader never sees a number
        before the ones below it; pages need no snapshot of their own.
        """
        found: list[Revocation] = []
        client = self._open_client()
        after = seq
        while len(found) < limit:
            page = limit - len(found)
            with _guarded():
                members: object = await client.zrangebyscore(
                    f"{self.prefix}rev", f"({after}", "+inf", start=0, num=page
                )
            entries = [_decode_member(m) for m in _list(members)]
            found.extend(e for e in entries if e.expires_at > now)
            if len(entries) < page:
                break
            after = entries[-1].seq
        return found[:limit]

    async def revocation_head(self) -> int:
        with _guarded():
            value: object = await self._open_client().get(f"{self.prefix}rev:seq")
        if value is None:
            return 0
        text = _str(value)  # responses are decoded
        if not text.isdigit():
            raise _malformed()
        return int(text)

    # -- rate limits -----------------------------------------------------------------------------

    async def rate_limit_take(self, key: str, limit: RateLimit, now: float) -> RateLimitResult:
        wait = _int(
            await self._run(
                self._lua.rate_limit_take, key, micros(now), limit.interval_us, limit.tolerance_us
            )
        )
        return RateLimitResult(True) if wait == 0 else RateLimitResult.refused(wait)

    async def prune(self, now: float) -> int:
        """Remove what has expired; rate-limit buckets expire by themselves (their TTL)."""
        count = 0
        while True:
            reply = _list(await self._run(self._lua.prune, _float(now), PRUNE_BATCH))
            count += _int(reply[0])
            if _int(reply[1]) == 0:
                return count

    # -- keys ------------------------------------------------------------------------------------

    async def list_keys(self) -> list[StoredKey]:
        return await self.ensure_keys(())

    async def add_keys(self, keys: Sequence[StoredKey]) -> None:
        words = [word for key in keys for word in (key.kid, _key_json(key))]
        if await self._run(self._lua.add_keys, *words) != 1:
            raise ValueError("a signing key with this id already exists")

    async def delete_keys(self, kids: Sequence[str]) -> int:
        if not kids:
            return 0
        return _int(await self._run(self._lua.delete_keys, *set(kids)))

    async def ensure_keys(self, candidates: Sequence[StoredKey]) -> list[StoredKey]:
        words: list[str | int] = [len(candidates)]
        for key in candidates:
            words += [key.kid, key.use, key.alg, "1" if key.active else "0", _key_json(key)]
        reply = _list(await self._run(self._lua.ensure_keys, *words))
        if _int(reply[0]) != 1:
            raise ValueError("a signing key with this id already exists")
        keys = [_key(_str(text)) for text in _list(reply[1])]
        return sorted(keys, key=lambda k: k.created_at)  # stable: keys created together keep their order

    # -- users -----------------------------------------------------------------------------------

    async def get_user(self, username: str) -> UserRecord | None:
        with _guarded():
            found: object = await self._open_client().hgetall(f"{self.prefix}u:{username}")
        return _decode(_user, found)

    async def add_user(self, user: UserRecord) -> bool:
        words = [
            "username",
            user.username,
            "password_hash",
            user.password_hash,
            "created_at",
            _float(user.created_at),
            "disabled",
            _bool(user.disabled),
        ]
        return await self._run(self._lua.add_user, user.username, *words) == 1

    async def update_user(
        self, username: str, *, password_hash: str | None = None, disabled: bool | None = None
    ) -> bool:
        words: list[str | int] = []
        if password_hash is not None:
            words += ["password_hash", password_hash]
        if disabled is not None:
            words += ["disabled", _bool(disabled)]
        return await self._run(self._lua.update_user, username, *words) == 1

    async def list_users(self) -> list[UserRecord]:
        users = [_required(_user, found) for found in _list(await self._run(self._lua.list_users))]
        return sorted(users, key=lambda u: u.username)


# -- errors ----------------------------------------------------------------------------------------


@contextmanager
def _guarded() -> Iterator[None]:
    """Driver errors (connection refused or lost, timeouts, error replies) become ``StoreUnavailable``."""
    try:
        yield
    except RedisError as exc:
        raise StoreUnavailable() from exc


async def _close_quietly(client: redis.asyncio.Redis) -> None:
    with suppress(RedisError):  # closing connections to a server that is gone: nothing to release
        await client.aclose()


def _malformed() -> StoreUnavailable:
    return StoreUnavailable("Redis holds a record this Keyturn cannot read.")


# -- encoding ----------------------------------------------------------------------------------------


def _float(value: float) -> str:
    return repr(float(value))


def _bool(value: bool) -> str:
    return "1" if value else "0"


def _ttl(lifetime: float) -> int:
    """A safety-net TTL: the record's own lifetime plus a margin, as a duration from now."""
    return max(0, math.ceil(lifetime)) + SAFETY_TTL_MARGIN


def _session_words(session: SessionRecord) -> list[str]:
    fields: dict[str, str | None] = {
        "sid": session.sid,
        "sub": session.sub,
        "created_at": _float(session.created_at),
        "absolute_expires_at": _float(session.absolute_expires_at),
        "head_jti": session.head_jti,
        "gen": str(session.gen),
        "last_seen_at": _float(session.last_seen_at),
        "state": session.state,
        "revoked_reason": session.revoked_reason,
        "revoked_at": None if session.revoked_at is None else _float(session.revoked_at),
        "user_agent": session.user_agent,
        "ip": session.ip,
        "client_id": session.client_id,
        "claims": json.dumps(session.claims),
    }
    return _words(fields)


def _refresh_words(record: RefreshRecord) -> list[str]:
    fields: dict[str, str | None] = {
        "jti": record.jti,
        "sid": record.sid,
        "gen": str(record.gen),
        "kid": record.kid,
        "issued_at": str(record.issued_at),
        "expires_at": str(record.expires_at),
        "rotated_at": None if record.rotated_at is None else _float(record.rotated_at),
    }
    return _words(fields)


def _words(fields: Mapping[str, str | None]) -> list[str]:
    """Hash fields as ``HSET`` words; a ``None`` is left out (an absent field reads back as ``None``)."""
    return [word for name, value in fields.items() if value is not None for word in (name, value)]


def _key_json(key: StoredKey) -> str:
    return json.dumps(
        {
            "kid": key.kid,
            "use": key.use,
            "alg": key.alg,
            "material": base64.b64encode(key.material).decode("ascii"),
            "public_jwk": key.public_jwk,
            "created_at": _float(key.created_at),
            "active": key.active,
        }
    )


# -- decoding ----------------------------------------------------------------------------------------

_STATES: dict[str, SessionState] = {state: state for state in get_args(SessionState)}
_REASONS: dict[str, RevokedReason] = {reason: reason for reason in get_args(RevokedReason)}
_USES: dict[str, KeyUse] = {use: use for use in get_args(KeyUse)}
_KINDS: dict[str, Literal["sid", "jti"]] = {"sid": "sid", "jti": "jti"}


def _list(reply: object) -> list[object]:
    if not isinstance(reply, list):
        raise _malformed()
    return reply


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise _malformed()
    return value


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise _malformed()
    return value


def _fields(reply: object) -> dict[str, str]:
    """A hash as ``HGETALL`` answers it: a dict from redis-py, a flat list from a script."""
    if isinstance(reply, dict):
        return {_str(name): _str(value) for name, value in reply.items()}
    words = _list(reply)
    return {_str(words[i]): _str(words[i + 1]) for i in range(0, len(words) - 1, 2)}


def _decode(read: Callable[[Mapping[str, str]], T], reply: object) -> T | None:
    """The record in ``reply`` (a hash), or ``None`` if the hash is empty (Redis: no such key)."""
    fields = _fields(reply)
    if not fields:
        return None
    try:
        return read(fields)
    except (KeyError, ValueError, TypeError) as exc:
        raise _malformed() from exc


def _required(read: Callable[[Mapping[str, str]], T], reply: object) -> T:
    found = _decode(read, reply)
    if found is None:
        raise _malformed()
    return found


def _optional_float(value: str | None) -> float | None:
    return None if value is None else float(value)


def _session(fields: Mapping[str, str]) -> SessionRecord:
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
        revoked_at=_optional_float(fields.get("revoked_at")),
        user_agent=fields.get("user_agent"),
        ip=fields.get("ip"),
        client_id=fields.get("client_id"),
        claims=json.loads(fields["claims"]),
    )


def _refresh(fields: Mapping[str, str]) -> RefreshRecord:
    return RefreshRecord(
        jti=fields["jti"],
        sid=fields["sid"],
        gen=int(fields["gen"]),
        kid=fields["kid"],
        issued_at=int(fields["issued_at"]),
        expires_at=int(fields["expires_at"]),
        rotated_at=_optional_float(fields.get("rotated_at")),
    )


def _user(fields: Mapping[str, str]) -> UserRecord:
    return UserRecord(
        username=fields["username"],
        password_hash=fields["password_hash"],
        created_at=float(fields["created_at"]),
        disabled=fields["disabled"] == "1",
    )


def _key(text: str) -> StoredKey:
    try:
        found = json.loads(text)
        public_jwk = found["public_jwk"]
        return StoredKey(
            kid=_str(found["kid"]),
            use=_USES[found["use"]],
            alg=_str(found["alg"]),
            material=base64.b64decode(_str(found["material"]), validate=True),
            public_jwk=None if public_jwk is None else _str(public_jwk),
            created_at=float(_str(found["created_at"])),
            active=found["active"] is True,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise _malformed() from exc


def _decode_member(member: object) -> Revocation:
    """A feed member ``seq|kind|expires_at|value`` (the value may itself hold ``|``)."""
    try:
        seq, kind, expires_at, value = _str(member).split("|", 3)
        return Revocation(int(seq), _KINDS[kind], value, float(expires_at))
    except (KeyError, ValueError) as exc:
        raise _malformed() from exc


__all__ = ["DEFAULT_PREFIX", "RedisStore", "split_url"]
