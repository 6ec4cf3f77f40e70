"""``memory://``: an in-process store for tests and single-process experiments.

Every method runs to completion without awaiting, so each is atomic on its event loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

from ..ratelimit import RateLimit, micros
from ..typing import (
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
from ._chain import Chain


class MemoryStore:
    """Sessions (each with its refresh chain), revocations, keys and users in dictionaries."""

    def __init__(self) -> None:
        self._sessions: dict[str, SessionRecord] = {}
        self._chains: dict[str, Chain] = {}  # each session's refresh chain, by sid
        self._revocations: list[Revocation] = []
        self._revoked_jtis: dict[str, float] = {}
        self._keys: dict[str, StoredKey] = {}
        self._users: dict[str, UserRecord] = {}
        self._clients: dict[str, ClientRecord] = {}
        self._buckets: dict[str, int] = {}  # rate-limit key to its TAT in microseconds
        self._seq = 0
        self._dpop_jtis: dict[str, float] = {}  # a DPoP proof's key (see DpopStore) to when it may go

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    # -- sessions ------------------------------------------------------------------------------

    async def create_session(self, session: SessionRecord, head: RefreshRecord) -> None:
        if session.sid in self._sessions:
            raise ValueError("a session with this id already exists")
        self._sessions[session.sid] = session
        self._chains[session.sid] = Chain(head)

    async def refresh(
        self,
        sid: str,
        jti: str,
        decide: Decide,
        takes: Sequence[RateLimitTake] = (),
        *,
        user: str | None = None,
    ) -> RefreshOutcome:
        for take in takes:
            taken = self._take(take.key, take.limit, take.now)
            if not taken.allowed:
                return RefreshOutcome(Limited(take, taken.retry_after), None, None)
        session = self._sessions.get(sid)
        chain = self._chains.get(sid)
        if session is None or chain is None:
            return RefreshOutcome(decide(None, None), None, None)
        if user is not None and not _allowed(self._users.get(user)):
            return RefreshOutcome(SubjectRefused(user), None, None)
        decision = decide(session, chain.presented(jti))
        if isinstance(decision, Rotate):
            self._chains[sid] = chain.rotate(decision)
            head = decision.new_head
            session = dataclasses.replace(session, head_jti=head.jti, gen=head.gen, last_seen_at=decision.now)
            self._sessions[sid] = session
            return RefreshOutcome(decision, session, head)
        if isinstance(decision, Replay):
            return RefreshOutcome(decision, session, chain.head)
        if isinstance(decision, Reuse):
            self._revoke(session, "reuse", decision.now, decision.revocation_expires_at)
        return RefreshOutcome(decision, self._sessions[sid], None)

    async def get_session(self, sid: str) -> SessionRecord | None:
        return self._sessions.get(sid)

    async def list_sessions(self, sub: str, *, include_revoked: bool = False) -> list[SessionRecord]:
        return [
            s for s in self._sessions.values() if s.sub == sub and (include_revoked or s.state == "active")
        ]

    async def list_all_sessions(self, *, include_revoked: bool = False) -> list[SessionRecord]:
        return [s for s in self._sessions.values() if include_revoked or s.state == "active"]

    async def revoke_session(
        self, sid: str, reason: RevokedReason, now: float, revocation_expires_at: float
    ) -> bool:
        session = self._sessions.get(sid)
        if session is None or session.state != "active":
            return False
        self._revoke(session, reason, now, revocation_expires_at)
        return True

    async def revoke_subject(
        self, sub: str, reason: RevokedReason, now: float, revocation_expires_at: float
    ) -> list[str]:
        active = [s for s in self._sessions.values() if s.sub == sub and s.state == "active"]
        for session in active:
            self._revoke(session, reason, now, revocation_expires_at)
        return [s.sid for s in active]

    def _revoke(self, session: SessionRecord, reason: RevokedReason, now: float, expires_at: float) -> None:
        self._sessions[session.sid] = dataclasses.replace(
            session, state="revoked", revoked_reason=reason, revoked_at=now
        )
        self._add_revocation("sid", session.sid, expires_at)

    # -- revocations -----------------------------------------------------------------------------

    async def revoke_access_token(self, jti: str, expires_at: float) -> None:
        if jti not in self._revoked_jtis:
            self._revoked_jtis[jti] = expires_at
            self._add_revocation("jti", jti, expires_at)

    async def is_access_token_revoked(self, jti: str, now: float) -> bool:
        expires_at = self._revoked_jtis.get(jti)
        return expires_at is not None and expires_at > now

    async def revocations_since(self, seq: int, now: float, limit: int = 1000) -> list[Revocation]:
        found = [r for r in self._revocations if r.seq > seq and r.expires_at > now]
        return found[:limit]

    async def revocation_head(self) -> int:
        return self._seq

    def _add_revocation(self, kind: Literal["sid", "jti"], value: str, expires_at: float) -> None:
        self._seq += 1
        self._revocations.append(Revocation(self._seq, kind, value, expires_at))

    # -- rate limits -----------------------------------------------------------------------------

    async def rate_limit_take(self, key: str, limit: RateLimit, now: float) -> RateLimitResult:
        return self._take(key, limit, now)

    def _take(self, key: str, limit: RateLimit, now: float) -> RateLimitResult:
        allowed, value = limit.take(self._buckets.get(key), micros(now))
        if not allowed:
            return RateLimitResult.refused(value)
        self._buckets[key] = value
        return RateLimitResult(True)

    async def use_dpop_jti(self, key: str, expires_at: float, now: float) -> bool:
        seen = self._dpop_jtis.get(key)
        if seen is not None and seen > now:
            return False
        self._dpop_jtis[key] = expires_at
        return True

    async def prune(self, now: float) -> int:
        now_us = micros(now)
        self._dpop_jtis = {k: v for k, v in self._dpop_jtis.items() if v > now}
        full = [key for key, tat in self._buckets.items() if tat <= now_us]
        for key in full:
            del self._buckets[key]
        before = len(self._sessions) + len(self._revocations) + len(self._revoked_jtis)
        gone = {sid for sid, s in self._sessions.items() if s.absolute_expires_at <= now}
        self._sessions = {k: v for k, v in self._sessions.items() if k not in gone}
        self._chains = {k: v for k, v in self._chains.items() if k not in gone}
        self._revocations = [r for r in self._revocations if r.expires_at > now]
        self._revoked_jtis = {k: v for k, v in self._revoked_jtis.items() if v > now}
        after = len(self._sessions) + len(self._revocations) + len(self._revoked_jtis)
        return before - after + len(full)

    # -- keys ------------------------------------------------------------------------------------

    async def list_keys(self) -> list[StoredKey]:
        return list(self._keys.values())

    async def add_keys(self, keys: Sequence[StoredKey]) -> None:
        if any(key.kid in self._keys for key in keys):
            raise ValueError("a key with this kid already exists")
        self._keys.update((key.kid, key) for key in keys)

    async def delete_keys(self, kids: Sequence[str]) -> int:
        return sum(self._keys.pop(kid, None) is not None for kid in set(kids))

    async def ensure_keys(self, candidates: Sequence[StoredKey]) -> list[StoredKey]:
        for key in candidates:
            if not any(k.use == key.use and k.alg == key.alg and k.active for k in self._keys.values()):
                self._keys[key.kid] = key
        return list(self._keys.values())

    # -- users -----------------------------------------------------------------------------------

    async def get_user(self, username: str) -> UserRecord | None:
        return self._users.get(username)

    async def add_user(self, user: UserRecord) -> bool:
        if user.username in self._users:
            return False
        self._users[user.username] = user
        return True

    async def update_user(
        self, username: str, *, password_hash: str | None = None, disabled: bool | None = None
    ) -> bool:
        user = self._users.get(username)
        if user is None:
            return False
        if password_hash is not None:
            user = dataclasses.replace(user, password_hash=password_hash)
        if disabled is not None:
            user = dataclasses.replace(user, disabled=disabled)
        self._users[username] = user
        return True

    async def list_users(self) -> list[UserRecord]:
        return sorted(self._users.values(), key=lambda u: u.username)

    # -- clients ---------------------------------------------------------------------------------

    async def get_client(self, client_id: str) -> ClientRecord | None:
        return self._clients.get(client_id)

    async def add_client(self, client: ClientRecord) -> bool:
        if client.client_id in self._clients:
            return False
        self._clients[client.client_id] = client
        return True

    async def remove_client(self, client_id: str) -> bool:
        return self._clients.pop(client_id, None) is not None

    async def list_clients(self) -> list[ClientRecord]:
        return sorted(self._clients.values(), key=lambda c: c.client_id)


def _allowed(user: UserRecord | None) -> bool:
    """The built-in users' subject check: a user that is gone or disabled may hold no session."""
    return user is not None and not user.disabled
