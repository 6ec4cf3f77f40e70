"""The store calls both SQL stores share, each written once as a flow, and :class:`SQLStore`, which runs them.

A flow is a generator that yields each statement (a :class:`~._sql.Query`) and is sent its answer; it
does no I/O. SQLite's synchronous connection and PostgreSQL's asynchronous one each drive the same flows
(``_drive`` in each store), the way httpx writes an auth flow once for its sync and async clients.
Applying a refresh decision is :func:`refresh`: the session is read, with its refresh chain (``_chain``:
no record per token); ``decide`` runs on the session and the presented token as the chain knows it; a
rotation is then one conditional update of the session.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar

from ..ratelimit import micros
from ..typing import (
    ClientRecord,
    Decide,
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
from ._sql import (
    Dialect,
    Flow,
    Query,
    chain_from,
    client_from,
    key_from,
    key_params,
    revocation_from,
    rotate_params,
    session_from,
    state_params,
    take_all,
    user_from,
)

T = TypeVar("T")


# -- flows -----------------------------------------------------------------------------------------


def refresh(
    d: Dialect,
    sid: str,
    jti: str,
    decide: Decide,
    limits: Sequence[RateLimitTake] = (),
    *,
    locked: bool = True,
    user: str | None = None,
) -> Flow[RefreshOutcome | None]:
    """``limits`` taken, then the session read (locked, where the dialect locks rows and ``locked``
    asks), with whether ``user`` may hold a session if asked, decided on, and applied.

    A rotation is one conditional update of the session; a replay and a reject write nothing. ``None``:
    nothing was applied, run the flow again ``locked`` (only when not ``locked``: the session's head moved
    between the read and the update, or the decision is a reuse, which revokes in a transaction).
    """
    if limits and not locked:  # the takes and the read, in one statement where the dialect has one
        limited, row = yield from d.take_and_read(sid, limits, user)
    else:
        limited = (yield from take_all(d, limits)) if limits else None
        if limited is None:
            row = yield d.read_state(sid, user, locked=locked)
    if limited is not None:
        return RefreshOutcome(limited, None, None)
    if row is None:
        return RefreshOutcome(decide(None, None), None, None)
    if user is not None:
        if not row[-1]:
            return RefreshOutcome(SubjectRefused(user), None, None)
        row = row[:-1]
    session, chain = session_from(row), chain_from(row)
    decision = decide(session, chain.presented(jti))
    if isinstance(decision, Rotate):
        after = chain.rotate(decision)
        if (yield Query(d.rotate, rotate_params(session, after, decision.now), "count")) != 1:
            return None
        head = decision.new_head
        session = dataclasses.replace(session, head_jti=head.jti, gen=head.gen, last_seen_at=decision.now)
        return RefreshOutcome(decision, session, head)
    if isinstance(decision, Replay):
        return RefreshOutcome(decision, session, chain.head)
    if isinstance(decision, Reuse):
        if not locked:
            return None
        revoked = yield from revoke(d, [sid], "reuse", decision.now, decision.revocation_expires_at)
        if revoked:
            session = dataclasses.replace(
                session, state="revoked", revoked_reason="reuse", revoked_at=decision.now
            )
    return RefreshOutcome(decision, session, None)


def create_session(d: Dialect, session: SessionRecord, head: RefreshRecord) -> Flow[None]:
    yield Query(d.insert_session, state_params(session, head))


def get_session(d: Dialect, sid: str) -> Flow[SessionRecord | None]:
    row = yield Query(d.select_session, (sid,), "one")
    return session_from(row) if row else None


def list_sessions(d: Dialect, sub: str | None, include_revoked: bool) -> Flow[list[SessionRecord]]:
    """The sessions of ``sub`` (``None``: of everyone), oldest first."""
    params: tuple[str, ...]
    if sub is None:
        query, params = d.all_sessions + ("" if include_revoked else " WHERE state = 'active'"), ()
    else:
        query, params = d.sessions_of + ("" if include_revoked else " AND state = 'active'"), (sub,)
    rows = yield Query(f"{query} {d.session_order}", params, "all")
    return [session_from(row) for row in rows]


def revoke(
    d: Dialect, sids: Sequence[str], reason: RevokedReason, now: float, revocation_expires_at: float
) -> Flow[list[str]]:
    """Revoke those of ``sids`` still active, in that order; return them."""
    if d.lock_sessions and len(sids) > 1:
        yield Query(d.lock_sessions, (list(sids),), "all")  # their locks first, in sid order
    revoked = []
    for sid in sids:
        if (yield Query(d.revoke, (reason, now, sid), "count")) == 1:
            revoked.append(sid)
    # The feed's turn comes after every row lock, so whoever holds the turn never waits for a row.
    yield from add_revocations(d, "sid", revoked, revocation_expires_at)
    return revoked


def revoke_subject(
    d: Dialect, sub: str, reason: RevokedReason, now: float, revocation_expires_at: float
) -> Flow[list[str]]:
    rows = yield Query(d.active_sids_of, (sub,), "all")
    return (yield from revoke(d, [sid for (sid,) in rows], reason, now, revocation_expires_at))


def add_revocations(
    d: Dialect, kind: Literal["sid", "jti"], values: Sequence[str], expires_at: float
) -> Flow[None]:
    if not values:
        return
    yield from d.take_turn("revocations")
    for value in values:
        yield from d.add_revocation(kind, value, expires_at)


def is_access_token_revoked(d: Dialect, jti: str, now: float) -> Flow[bool]:
    return (yield Query(d.access_token_revoked, (jti, now), "one")) is not None


def revocations_since(d: Dialect, seq: int, now: float, limit: int) -> Flow[list[Revocation]]:
    rows = yield Query(d.revocations_since, (seq, now, limit), "all")
    return [revocation_from(row) for row in rows]


def revocation_head(d: Dialect) -> Flow[int]:
    row = yield Query(d.revocation_head, (), "one")
    return int(row[0]) if row is not None and row[0] is not None else 0


def use_dpop_jti(d: Dialect, key: str, expires_at: float, now: float) -> Flow[bool]:
    changed: int = yield Query(d.use_dpop_jti, (key, expires_at, now), "count")
    return changed == 1


def prune(d: Dialect, now: float) -> Flow[int]:
    rate_limits, *rest = d.prune
    count: int = yield Query(rate_limits, (micros(now),), "count")
    for query in rest:
        count += yield Query(query, (now,), "count")
    return count


def list_keys(d: Dialect) -> Flow[list[StoredKey]]:
    rows = yield Query(d.list_keys, (), "all")
    return [key_from(row) for row in rows]


def add_keys(d: Dialect, keys: Sequence[StoredKey]) -> Flow[None]:
    yield from d.take_turn("signing_keys")
    for key in keys:
        yield Query(d.insert_key, key_params(key))


def ensure_keys(d: Dialect, candidates: Sequence[StoredKey]) -> Flow[list[StoredKey]]:
    # In turn with other processes: two starting together must not both add a key.
    yield from d.take_turn("signing_keys")
    for key in candidates:
        if (yield Query(d.active_key, (key.use, key.alg), "one")) is None:
            yield Query(d.insert_key, key_params(key))
    return (yield from list_keys(d))


def delete_keys(d: Dialect, kids: Sequence[str]) -> Flow[int]:
    yield from d.take_turn("signing_keys")
    count = 0
    for kid in set(kids):
        count += yield Query(d.delete_key, (kid,), "count")
    return count


def get_user(d: Dialect, username: str) -> Flow[UserRecord | None]:
    row = yield Query(d.select_user, (username,), "one")
    return user_from(row) if row else None


def add_user(d: Dialect, user: UserRecord) -> Flow[bool]:
    params = (user.username, user.password_hash, user.created_at, user.disabled)
    added: int = yield Query(d.add_user, params, "count")
    return added == 1


def update_user(d: Dialect, username: str, password_hash: str | None, disabled: bool | None) -> Flow[bool]:
    changed: int = yield Query(d.update_user, (password_hash, disabled, username), "count")
    return changed == 1


def list_users(d: Dialect) -> Flow[list[UserRecord]]:
    rows = yield Query(d.list_users, (), "all")
    return [user_from(row) for row in rows]


def get_client(d: Dialect, client_id: str) -> Flow[ClientRecord | None]:
    row = yield Query(d.select_client, (client_id,), "one")
    return client_from(row) if row else None


def add_client(d: Dialect, client: ClientRecord) -> Flow[bool]:
    params = (client.client_id, client.secret_hash, client.created_at, client.dpop)
    added: int = yield Query(d.add_client, params, "count")
    return added == 1


def remove_client(d: Dialect, client_id: str) -> Flow[bool]:
    removed: int = yield Query(d.remove_client, (client_id,), "count")
    return removed == 1


def list_clients(d: Dialect) -> Flow[list[ClientRecord]]:
    rows = yield Query(d.list_clients, (), "all")
    return [client_from(row) for row in rows]


def ping() -> Flow[None]:
    yield Query("SELECT 1", (), "one")


# -- the store ---------------------------------------------------------------------------------------


class SQLStore:
    """The store methods both SQL stores share: each one flow, run by the subclass's driver.

    ``_write`` runs a flow in one transaction, all of it or nothing; ``_read`` runs it without one. Each
    takes a function that makes the flow, since a driver may start it again from the beginning (SQLite
    on its waiting thread, PostgreSQL after a deadlock). ``rate_limit_take`` and ``open``/``close`` are the
    subclass's own.
    """

    dialect: Dialect

    async def _write(self, flow: Callable[[], Flow[T]]) -> T:
        raise NotImplementedError

    async def _read(self, flow: Callable[[], Flow[T]]) -> T:
        raise NotImplementedError

    async def ping(self) -> None:
        await self._read(ping)

    # -- sessions ------------------------------------------------------------------------------

    async def create_session(self, session: SessionRecord, head: RefreshRecord) -> None:
        await self._write(lambda: create_session(self.dialect, session, head))

    async def refresh(
        self,
        sid: str,
        jti: str,
        decide: Decide,
        takes: Sequence[RateLimitTake] = (),
        *,
        user: str | None = None,
    ) -> RefreshOutcome:
        outcome = await self._write(lambda: refresh(self.dialect, sid, jti, decide, takes, user=user))
        if outcome is None:  # a locked refresh always applies its decision
            raise RuntimeError(f"session {sid} changed under its own lock")
        return outcome

    async def get_session(self, sid: str) -> SessionRecord | None:
        if not self.dialect.storable(sid):  # an id from a URL path, say
            return None
        return await self._read(lambda: get_session(self.dialect, sid))

    async def list_sessions(self, sub: str, *, include_revoked: bool = False) -> list[SessionRecord]:
        return await self._read(lambda: list_sessions(self.dialect, sub, include_revoked))

    async def list_all_sessions(self, *, include_revoked: bool = False) -> list[SessionRecord]:
        return await self._read(lambda: list_sessions(self.dialect, None, include_revoked))

    async def revoke_session(
        self, sid: str, reason: RevokedReason, now: float, revocation_expires_at: float
    ) -> bool:
        return bool(
            await self._write(lambda: revoke(self.dialect, [sid], reason, now, revocation_expires_at))
        )

    async def revoke_subject(
        self, sub: str, reason: RevokedReason, now: float, revocation_expires_at: float
    ) -> list[str]:
        return await self._write(
            lambda: revoke_subject(self.dialect, sub, reason, now, revocation_expires_at)
        )

    # -- revocations -----------------------------------------------------------------------------

    async def revoke_access_token(self, jti: str, expires_at: float) -> None:
        await self._write(lambda: add_revocations(self.dialect, "jti", [jti], expires_at))

    async def is_access_token_revoked(self, jti: str, now: float) -> bool:
        return await self._read(lambda: is_access_token_revoked(self.dialect, jti, now))

    async def revocations_since(self, seq: int, now: float, limit: int = 1000) -> list[Revocation]:
        return await self._read(lambda: revocations_since(self.dialect, seq, now, limit))

    async def revocation_head(self) -> int:
        return await self._read(lambda: revocation_head(self.dialect))

    # -- DPoP ------------------------------------------------------------------------------------

    async def use_dpop_jti(self, key: str, expires_at: float, now: float) -> bool:
        return await self._write(lambda: use_dpop_jti(self.dialect, key, expires_at, now))

    # -- expiry ------------------------------------------------------------------------------------

    async def prune(self, now: float) -> int:
        return await self._write(lambda: prune(self.dialect, now))

    # -- keys ------------------------------------------------------------------------------------

    async def list_keys(self) -> list[StoredKey]:
        return await self._read(lambda: list_keys(self.dialect))

    async def add_keys(self, keys: Sequence[StoredKey]) -> None:
        await self._write(lambda: add_keys(self.dialect, keys))

    async def delete_keys(self, kids: Sequence[str]) -> int:
        return await self._write(lambda: delete_keys(self.dialect, kids))

    async def ensure_keys(self, candidates: Sequence[StoredKey]) -> list[StoredKey]:
        return await self._write(lambda: ensure_keys(self.dialect, candidates))

    # -- users -----------------------------------------------------------------------------------

    async def get_user(self, username: str) -> UserRecord | None:
        if not self.dialect.storable(username):  # a name from a login form, say
            return None
        return await self._read(lambda: get_user(self.dialect, username))

    async def add_user(self, user: UserRecord) -> bool:
        return await self._write(lambda: add_user(self.dialect, user))

    async def update_user(
        self, username: str, *, password_hash: str | None = None, disabled: bool | None = None
    ) -> bool:
        return await self._write(lambda: update_user(self.dialect, username, password_hash, disabled))

    async def list_users(self) -> list[UserRecord]:
        return await self._read(lambda: list_users(self.dialect))

    # -- clients ---------------------------------------------------------------------------------

    async def get_client(self, client_id: str) -> ClientRecord | None:
        if not self.dialect.storable(client_id):
            return None
        return await self._read(lambda: get_client(self.dialect, client_id))

    async def add_client(self, client: ClientRecord) -> bool:
        return await self._write(lambda: add_client(self.dialect, client))

    async def remove_client(self, client_id: str) -> bool:
        return await self._write(lambda: remove_client(self.dialect, client_id))

    async def list_clients(self) -> list[ClientRecord]:
        return await self._read(lambda: list_clients(self.dialect))
