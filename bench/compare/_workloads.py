"""The workloads, one code path for every system: only paths and JSON field names differ (``_systems.Api``).

- :func:`sequential`: one session refreshes its own chain, one request at a time, on one connection;
  the latency of each refresh.
- :func:`throughput`: N sessions, each on its own connection, each refreshing its own chain as fast as
  its answers come (a closed loop) for a fixed time; successful refreshes per second (errors are counted
  apart, never as throughput), latency percentiles.
- :func:`protected`: the same with ``GET`` of a protected endpoint and each session's access token.
- :func:`race`: one session's refresh token sent k times at once on k connections (spread over the
  service's processes): how many succeed, how many distinct new refresh tokens come back, and how many of
  those chains still refresh afterwards.
- :func:`replay`: rotate once, wait, send the rotated (old) token again, then refresh with the newest
  token: is the family revoked?

A session whose chain a server ended (a 401 during a load run) stops for the rest of that run and is
counted as lost; it is replaced by a new login, outside any measured time, before the next run.

A Keyturn session may be bound to a DPoP key (RFC 9449, ``Session.key``): then its login and each of its
refreshes carry a new proof by that key, signed when the request is sent (as a client does), so the
signing is part of the measured time. Everything else is the same code path as for Bearer sessions.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from _client import TRANSPORT_ERROR, Connection, Reply
from _summary import percentiles
from _systems import USER, Resource, System

from keyturn.client.dpop import DpopKey

GIVE_UP_AFTER = 3
"""Transport failures in a row (each up to ``_client.TIMEOUT``) after which a sequential run stops."""
Call = Callable[[Connection, "Session"], Awaitable[Reply]]


@dataclass
class Session:
    """One refresh-token family of ``system``: its newest pair, and which process it talks to."""

    system: System
    index: int
    refresh: str = field(default="", repr=False)
    access: str = field(default="", repr=False)
    lost: bool = False
    key: DpopKey | None = field(default=None, repr=False)
    """The DPoP key the session is bound to (Keyturn only), or ``None`` for a Bearer session."""

    @property
    def url(self) -> str:
        return self.system.url(self.index)

    def take(self, reply: Reply) -> bool:
        """Keep the pair of a successful refresh or login answer; ``False`` if ``reply`` failed."""
        if not reply.ok or not isinstance(reply.body, dict):
            return False
        self.refresh = str(reply.body[self.system.api.refresh_field])
        self.access = str(reply.body[self.system.api.access_field])
        return True


def proof(conn: Connection, path: str, key: DpopKey | None) -> dict[str, str] | None:
    """The ``DPoP`` header of a ``POST`` to ``path`` on ``conn``: a new proof by ``key`` (none without)."""
    if key is None:
        return None
    return {"DPoP": key.proof("POST", f"http://{conn.host}:{conn.port}{path}", now=time.time())}


async def login(system: System, index: int, key: DpopKey | None = None) -> Session:
    """A new session by the login endpoint (a password check); bound to ``key`` if one is given."""
    session = Session(system, index, key=key)
    conn = Connection(session.url)
    try:
        body = {"username": USER, "password": system.password}
        reply = await conn.send("POST", system.api.login_path, body, proof(conn, system.api.login_path, key))
    finally:
        await conn.close()
    if not session.take(reply):
        raise RuntimeError(f"{system.key}: login failed: {reply.reason}")
    return session


async def mint(system: System, first: int, count: int, keys: list[DpopKey] | None = None) -> list[Session]:
    """``count`` new sessions (indices ``first``…) made by ``system.mint`` (no password hashing); with
    ``keys`` (Keyturn only), session ``i`` is bound to ``keys[i]``, its thumbprint given on stdin."""
    bound = ["--bound"] if keys is not None else []
    proc = await asyncio.create_subprocess_exec(
        *system.mint,
        str(count),
        *bound,
        env=system.env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    thumbprints = "".join(f"{k.thumbprint}\n" for k in keys or [])
    out, err = await proc.communicate(thumbprints.encode())
    if proc.returncode != 0:
        raise RuntimeError(f"{system.key}: minting sessions failed: {err.decode(errors='replace')[-2000:]}")
    pairs = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    return [
        Session(system, first + i, p["refresh"], p["access"], key=keys[i] if keys else None)
        for i, p in enumerate(pairs)
    ]


async def renew_lost(sessions: list[Session]) -> int:
    """Log in again for every lost session (outside measured time); how many were lost."""
    lost = [s for s in sessions if s.lost]
    for session in lost:
        fresh = await login(session.system, session.index, session.key)
        session.refresh, session.access, session.lost = fresh.refresh, fresh.access, False
    return len(lost)


async def send_refresh(conn: Connection, system: System, token: str, key: DpopKey | None = None) -> Reply:
    path = system.api.refresh_path
    return await conn.send("POST", path, {system.api.refresh_field: token}, proof(conn, path, key))


async def sequential(session: Session, count: int) -> dict[str, Any]:
    """``count`` refreshes of one chain, one after the other; the milliseconds of each."""
    conn = Connection(session.url)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    ok = silent = 0
    try:
        for _ in range(count):
            started = time.perf_counter()
            reply = await send_refresh(conn, session.system, session.refresh, session.key)
            latencies.append(round((time.perf_counter() - started) * 1000, 4))
            if session.take(reply):
                ok, silent = ok + 1, 0
                continue
            errors[reply.reason] += 1
            silent = silent + 1 if reply.status == TRANSPORT_ERROR else 0
            if silent == GIVE_UP_AFTER:
                errors["gave up: the server stopped answering"] += 1
                break
            if 400 <= reply.status < 500:  # the chain is over: go on with a new session
                fresh = await login(session.system, session.index, session.key)
                session.refresh, session.access = fresh.refresh, fresh.access
    finally:
        await conn.close()
    return {"count": count, "ok": ok, "errors": dict(errors), "latencies_ms": latencies}


async def _closed_loop(
    sessions: list[Session], seconds: float, url: Callable[[Session], str], call: Call, dead_on_401: bool
) -> dict[str, Any]:
    """Every session on its own connection to ``url(session)``, calling ``call(conn, session)`` until
    ``seconds`` have passed.

    The rate is the successes divided by the time until the last answer came (calls in flight when the
    time is up are waited for and counted), so that slow answers are not cut off.
    """
    ok = 0
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    opened = 0
    started = time.perf_counter()
    stop = started + seconds

    async def worker(session: Session) -> None:
        nonlocal ok, opened
        conn = Connection(url(session))
        try:
            while time.perf_counter() < stop and not session.lost:
                began = time.perf_counter()
                reply = await call(conn, session)
                latencies.append((time.perf_counter() - began) * 1000)
                if reply.ok:
                    ok += 1
                    continue
                errors[reply.reason] += 1
                if dead_on_401 and reply.status == 401:
                    session.lost = True
        finally:
            opened += conn.opened
            await conn.close()

    await asyncio.gather(*(worker(s) for s in sessions))
    elapsed = time.perf_counter() - started
    return {
        "sessions": len(sessions),
        "seconds": elapsed,
        "ok": ok,
        "rate": ok / elapsed,
        "errors": dict(errors),
        "sessions_lost": sum(s.lost for s in sessions),
        "connections_opened": opened,
        "latency_ms": percentiles(latencies),
    }


async def throughput(sessions: list[Session], seconds: float) -> dict[str, Any]:
    """Each session rotates its own chain as fast as it can; successful refreshes per second."""

    async def call(conn: Connection, session: Session) -> Reply:
        reply = await send_refresh(conn, session.system, session.refresh, session.key)
        session.take(reply)
        return reply

    return await _closed_loop(sessions, seconds, lambda s: s.url, call, dead_on_401=True)


async def fresh_access(sessions: list[Session]) -> None:
    """One refresh per session (not measured), so that every access token is new."""
    conn_by_url: dict[str, Connection] = {}
    try:
        for session in sessions:
            conn = conn_by_url.setdefault(session.url, Connection(session.url))
            reply = await send_refresh(conn, session.system, session.refresh, session.key)
            if not session.take(reply):
                session.lost = True
    finally:
        for conn in conn_by_url.values():
            await conn.close()
    await renew_lost(sessions)


async def protected(resource: Resource, sessions: list[Session], seconds: float) -> dict[str, Any]:
    """``GET`` the protected endpoint with each session's access token as fast as answers come."""

    headers = {s.index: {"Authorization": f"Bearer {s.access}"} for s in sessions}

    async def call(conn: Connection, session: Session) -> Reply:
        return await conn.send("GET", resource.path, headers=headers[session.index])

    return await _closed_loop(sessions, seconds, lambda s: resource.url(s.index), call, dead_on_401=False)


async def race(session: Session, racers: int) -> dict[str, Any]:
    """Send ``session``'s refresh token ``racers`` times at once; what came back, and what still works."""
    system = session.system
    conns = [Connection(system.url(session.index + i)) for i in range(racers)]
    try:
        await asyncio.gather(*(c.connect() for c in conns))
        replies = await asyncio.gather(*(send_refresh(c, system, session.refresh) for c in conns))
    finally:
        for conn in conns:
            await conn.close()
    new_tokens = {str(r.body[system.api.refresh_field]) for r in replies if r.ok and isinstance(r.body, dict)}
    alive = 0
    conn = Connection(session.url)
    try:
        for token in new_tokens:  # does each chain that came out of the race still refresh?
            alive += (await send_refresh(conn, system, token)).ok
    finally:
        await conn.close()
    return {
        "racers": racers,
        "succeeded": sum(r.ok for r in replies),
        "distinct_tokens": len(new_tokens),
        "chains_alive": alive,
        "answers": dict(Counter(r.reason for r in replies)),
    }


async def replay(system: System, wait: float) -> dict[str, Any]:
    """Rotate once (process 1), wait ``wait`` s, replay the old token (process 2), then use the newest (1)."""
    session = await login(system, 0)
    old = session.refresh
    first, second = Connection(system.url(0)), Connection(system.url(1))
    try:
        rotated = await send_refresh(first, system, old)
        if not session.take(rotated):
            raise RuntimeError(f"{system.key}: the first rotation failed: {rotated.reason}")
        newest = session.refresh
        await first.close()
        await asyncio.sleep(wait)
        replayed = await send_refresh(second, system, old)
        replayed_token = replayed.body.get(system.api.refresh_field) if replayed.ok else None
        after = await send_refresh(first, system, newest)
    finally:
        await first.close()
        await second.close()
    return {
        "wait_s": wait,
        "grace_period_s": system.grace_period,
        "processes": len(system.urls),
        "replay_answer": replayed.reason,
        "replay_returned_current_token": None if replayed_token is None else replayed_token == newest,
        "newest_answer": after.reason,
        "family_revoked": not after.ok,
    }
