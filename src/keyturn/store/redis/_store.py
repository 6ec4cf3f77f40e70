"""``RedisStore``: the store's calls, each one Lua script or one command (see the package for the layout)."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Sequence
from contextlib import suppress
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError
from redis.maint_notifications import MaintNotificationsConfig

from ...errors import StoreUnavailable
from ...ratelimit import RateLimit, micros
from ...typing import (
    MICROSECONDS,
    ClientRecord,
    Decide,
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
    StoredKey,
    SubjectRefused,
    UserRecord,
)
from .._chain import Chain
from ._batches import Batches
from ._records import (
    REPLY_TIMEOUT,
    as_int,
    as_list,
    as_str,
    bool_text,
    chain_words,
    client_from,
    decode,
    decode_fields,
    decode_member,
    fields_of,
    float_text,
    guarded,
    key_from,
    key_json,
    malformed,
    required,
    session_and_chain,
    session_from,
    session_words,
    ttl,
    user_from,
)
from ._scripts import Scripts

DEFAULT_PREFIX = "keyturn:"
CONNECT_TIMEOUT = 3.0
"""Seconds to wait for a connection (each call, connection included, is bounded by ``REPLY_TIMEOUT``)."""
MAX_REFRESH_TRIES = 100
PRUNE_BATCH = 1000
MIGRATE_BATCH = 100
"""Refresh records of an older layout one migration script moves (with every record of their sessions)."""
"""Entries of each kind one prune script removes, so no script blocks the server for long."""

_SCHEMES = ("redis", "rediss", "unix")


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
        self._scripts: Scripts | None = None
        self._batches: Batches | None = None

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
            # No socket_timeout (redis-py's default is 5 s): every call is bounded by ``guarded()``, and
            # every batch by its own timer, instead (see there); redis-py's would add a timer to each read
            # and a task to each write.
            socket_timeout=None,
            # No blind retries: a script sent again after a lost reply could apply twice. A pooled
            # connection the server has closed (a restart) is replaced when it is next taken from the
            # pool; redis-py skips that check while maintenance notifications (a Redis Enterprise
            # feature) are on, and their default, "auto", counts as on.
            retry=Retry(NoBackoff(), 0),
            maint_notifications_config=MaintNotificationsConfig(enabled=False),
        )
        try:
            async with asyncio.timeout(REPLY_TIMEOUT):
                await client.ping()
        except (RedisError, TimeoutError) as exc:
            await _close_quietly(client)
            raise StoreUnavailable(f"cannot reach Redis at {self._where()}: {exc}") from exc
        self._client, self._scripts, self._batches = client, Scripts.on(client), Batches(client)
        try:
            await self._migrate()
        except BaseException:
            await self.close()
            raise

    async def _migrate(self) -> None:
        """Move what an older Keyturn wrote to the current layout (``migrate.lua``), a batch at a time."""
        while as_int(await self._run(self._lua.migrate, MIGRATE_BATCH)) != 1:
            pass

    async def close(self) -> None:
        client, self._client, self._scripts = self._client, None, None
        batches, self._batches = self._batches, None
        if batches is not None:
            batches.cancel()
        if client is not None:
            await _close_quietly(client)

    async def ping(self) -> None:
        async with guarded():
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
    def _lua(self) -> Scripts:
        if self._scripts is None:
            raise RuntimeError("the store is not open")
        return self._scripts

    async def _run(self, script: AsyncScript, *args: str | int) -> object:
        """Run ``script`` with the prefix as ``ARGV[1]`` and ``args`` after it.

        Sent with the other calls made during the same turn of the event loop, as one batch (``_batches``),
        which leaves on the loop's next turn and is bounded by ``REPLY_TIMEOUT`` itself (a call's own timer
        would only add one per call): its calls get their replies, their own error replies or
        ``StoreUnavailable`` within that bound.
        """
        if self._batches is None:
            raise RuntimeError("the store is not open")
        batches = self._batches
        command = ("EVALSHA", script.sha, 0, self.prefix, *args)
        try:
            try:
                return await batches.call(*command)
            except NoScriptError:  # the server lost its scripts (a restart, SCRIPT FLUSH): load it again
                async with guarded():
                    script.sha = await self._open_client().script_load(script.script)
                return await batches.call("EVALSHA", script.sha, *command[2:])
        except RedisError as exc:  # the script's own error reply
            raise StoreUnavailable() from exc

    # -- sessions ------------------------------------------------------------------------------

    async def create_session(self, session: SessionRecord, head: RefreshRecord) -> None:
        done = await self._run(
            self._lua.create_session,
            session.sid,
            session.sub,
            float_text(session.created_at),
            float_text(session.absolute_expires_at),
            ttl(session.absolute_expires_at - session.created_at),
            *session_words(session),
            *chain_words(Chain(head)),
        )
        if done != 1:
            raise ValueError("a session with this id already exists")

    async def refresh(
        self,
        sid: str,
        jti: str,
        decide: Decide,
        takes: Sequence[RateLimitTake] = (),
        *,
        user: str | None = None,
    ) -> RefreshOutcome:
        words: list[str | int] = [len(takes)]
        for take in takes:
            words += [take.key, micros(take.now), take.limit.interval_us, take.limit.tolerance_us]
        if user is not None:  # the subject check, read by the same script as the session
            words.append(user)
        for _ in range(MAX_REFRESH_TRIES):
            reply = as_list(await self._run(self._lua.read_refresh, sid, *words))
            if len(reply) > 2:  # a take refused: nothing was read
                refused = takes[as_int(reply[1]) - 1]
                return RefreshOutcome(Limited(refused, as_int(reply[2]) / MICROSECONDS), None, None)
            # Taken and checked once: a second read (the session changed meanwhile) does neither again.
            words = [0]
            found = fields_of(reply[0])
            if not found:
                return RefreshOutcome(decide(None, None), None, None)
            if user is not None and len(reply) == 2 and as_int(reply[1]) != 1:
                return RefreshOutcome(SubjectRefused(user), None, None)
            session, chain = decode_fields(session_and_chain, found)
            decision = decide(session, chain.presented(jti))
            if isinstance(decision, Rotate):
                head, now = decision.new_head, float_text(decision.now)
                after = chain.rotate(decision)
                done = await self._run(
                    self._lua.rotate,
                    sid,
                    session.head_jti,
                    session.state,
                    *("head_jti", head.jti, "gen", str(head.gen), "last_seen_at", now),
                    *chain_words(after),
                )
                if done == 1:
                    session = dataclasses.replace(
                        session, head_jti=head.jti, gen=head.gen, last_seen_at=decision.now
                    )
                    return RefreshOutcome(decision, session, head)
                continue  # the session changed since it was read: read and decide again
            if isinstance(decision, Replay):
                return RefreshOutcome(decision, session, chain.head)
            if isinstance(decision, Reuse):
                done = await self._run(
                    self._lua.reuse,
                    sid,
                    session.head_jti,
                    session.state,
                    float_text(decision.now),
                    float_text(decision.revocation_expires_at),
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
        async with guarded():
            found: object = await self._open_client().hgetall(f"{self.prefix}s:{sid}")
        return decode(session_from, found)

    async def list_sessions(self, sub: str, *, include_revoked: bool = False) -> list[SessionRecord]:
        return await self._list_sessions(f"sub:{sub}", include_revoked)

    async def list_all_sessions(self, *, include_revoked: bool = False) -> list[SessionRecord]:
        return await self._list_sessions("sessions", include_revoked)

    async def _list_sessions(self, index: str, include_revoked: bool) -> list[SessionRecord]:
        reply = await self._run(self._lua.list_sessions, index, "1" if include_revoked else "0")
        return [required(session_from, found) for found in as_list(reply)]

    async def revoke_session(
        self, sid: str, reason: RevokedReason, now: float, revocation_expires_at: float
    ) -> bool:
        done = await self._run(
            self._lua.revoke_session, sid, reason, float_text(now), float_text(revocation_expires_at)
        )
        return done == 1

    async def revoke_subject(
        self, sub: str, reason: RevokedReason, now: float, revocation_expires_at: float
    ) -> list[str]:
        reply = await self._run(
            self._lua.revoke_subject, sub, reason, float_text(now), float_text(revocation_expires_at)
        )
        return [as_str(sid) for sid in as_list(reply)]

    # -- revocations -----------------------------------------------------------------------------

    async def revoke_access_token(self, jti: str, expires_at: float) -> None:
        await self._run(self._lua.revoke_access_token, jti, float_text(expires_at))

    async def is_access_token_revoked(self, jti: str, now: float) -> bool:
        async with guarded():
            score: object = await self._open_client().zscore(f"{self.prefix}rev:jti", jti)
        if score is None:
            return False
        if not isinstance(score, float | int | str):
            raise malformed()
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
            async with guarded():
                members: object = await client.zrangebyscore(
                    f"{self.prefix}rev", f"({after}", "+inf", start=0, num=page
                )
            entries = [decode_member(m) for m in as_list(members)]
            found.extend(e for e in entries if e.expires_at > now)
            if len(entries) < page:
                break
            after = entries[-1].seq
        return found[:limit]

    async def revocation_head(self) -> int:
        async with guarded():
            value: object = await self._open_client().get(f"{self.prefix}rev:seq")
        if value is None:
            return 0
        text = as_str(value)  # responses are decoded
        if not text.isdigit():
            raise malformed()
        return int(text)

    # -- DPoP ------------------------------------------------------------------------------------

    async def use_dpop_jti(self, key: str, expires_at: float, now: float) -> bool:
        """``SET NX`` with the proof's remaining window as its TTL: Redis forgets it by itself."""
        ttl_ms = max(1, math.ceil((expires_at - now) * 1000))
        async with guarded():
            done: object = await self._open_client().set(f"{self.prefix}dpop:{key}", "1", nx=True, px=ttl_ms)
        return done is True

    # -- rate limits -----------------------------------------------------------------------------

    async def rate_limit_take(self, key: str, limit: RateLimit, now: float) -> RateLimitResult:
        wait = as_int(
            await self._run(
                self._lua.rate_limit_take, key, micros(now), limit.interval_us, limit.tolerance_us
            )
        )
        return RateLimitResult(True) if wait == 0 else RateLimitResult.refused(wait)

    async def prune(self, now: float) -> int:
        """Remove what has expired; rate-limit buckets expire by themselves (their TTL)."""
        count = 0
        while True:
            reply = as_list(await self._run(self._lua.prune, float_text(now), PRUNE_BATCH))
            count += as_int(reply[0])
            if as_int(reply[1]) == 0:
                return count

    # -- keys ------------------------------------------------------------------------------------

    async def list_keys(self) -> list[StoredKey]:
        return await self.ensure_keys(())

    async def add_keys(self, keys: Sequence[StoredKey]) -> None:
        words = [word for key in keys for word in (key.kid, key_json(key))]
        if await self._run(self._lua.add_keys, *words) != 1:
            raise ValueError("a signing key with this id already exists")

    async def delete_keys(self, kids: Sequence[str]) -> int:
        if not kids:
            return 0
        return as_int(await self._run(self._lua.delete_keys, *set(kids)))

    async def ensure_keys(self, candidates: Sequence[StoredKey]) -> list[StoredKey]:
        words: list[str | int] = [len(candidates)]
        for key in candidates:
            words += [key.kid, key.use, key.alg, "1" if key.active else "0", key_json(key)]
        reply = as_list(await self._run(self._lua.ensure_keys, *words))
        if as_int(reply[0]) != 1:
            raise ValueError("a signing key with this id already exists")
        keys = [key_from(as_str(text)) for text in as_list(reply[1])]
        return sorted(keys, key=lambda k: k.created_at)  # stable: keys created together keep their order

    # -- users -----------------------------------------------------------------------------------

    async def get_user(self, username: str) -> UserRecord | None:
        async with guarded():
            found: object = await self._open_client().hgetall(f"{self.prefix}u:{username}")
        return decode(user_from, found)

    async def add_user(self, user: UserRecord) -> bool:
        words = [
            "username",
            user.username,
            "password_hash",
            user.password_hash,
            "created_at",
            float_text(user.created_at),
            "disabled",
            bool_text(user.disabled),
        ]
        return await self._run(self._lua.add_user, user.username, *words) == 1

    async def update_user(
        self, username: str, *, password_hash: str | None = None, disabled: bool | None = None
    ) -> bool:
        words: list[str | int] = []
        if password_hash is not None:
            words += ["password_hash", password_hash]
        if disabled is not None:
            words += ["disabled", bool_text(disabled)]
        return await self._run(self._lua.update_user, username, *words) == 1

    async def list_users(self) -> list[UserRecord]:
        users = [required(user_from, found) for found in as_list(await self._run(self._lua.list_users))]
        return sorted(users, key=lambda u: u.username)

    # -- clients ---------------------------------------------------------------------------------

    async def get_client(self, client_id: str) -> ClientRecord | None:
        async with guarded():
            found: object = await self._open_client().hgetall(f"{self.prefix}c:{client_id}")
        return decode(client_from, found)

    async def add_client(self, client: ClientRecord) -> bool:
        words = [
            "client_id",
            client.client_id,
            "created_at",
            float_text(client.created_at),
            "dpop",
            client.dpop,
        ]
        if client.secret_hash is not None:
            words += ["secret_hash", client.secret_hash]
        return await self._run(self._lua.add_client, client.client_id, *words) == 1

    async def remove_client(self, client_id: str) -> bool:
        return await self._run(self._lua.remove_client, client_id) == 1

    async def list_clients(self) -> list[ClientRecord]:
        found = as_list(await self._run(self._lua.list_clients))
        return sorted((required(client_from, f) for f in found), key=lambda c: c.client_id)


async def _close_quietly(client: redis.asyncio.Redis) -> None:
    with suppress(RedisError):  # closing connections to a server that is gone: nothing to release
        await client.aclose()


__all__ = ["DEFAULT_PREFIX", "RedisStore", "split_url"]
