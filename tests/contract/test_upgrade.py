"""Upgrading a store written by the previous layout (a record per refresh token) to state per session.

The previous layout is written here as the previous Keyturn wrote it (its tables and statements, its Redis
keys), with live sessions: one never refreshed, one rotated two seconds before the upgrade, one rotated
twice long ago. Opening the store migrates it in place; then every session refreshes, the token rotated
just before the upgrade gets its grace replay (the head, byte for byte), and an old token is still reuse.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import psycopg
import pytest

from keyturn.clock import FrozenClock
from keyturn.errors import RefreshTokenReused
from keyturn.keys import MasterKey, new_access_key, new_refresh_key
from keyturn.store import open_store, postgres, sqlite
from keyturn.store.redis._records import key_json, session_words
from keyturn.testing import make_service, make_settings
from keyturn.typing import RefreshRecord, SessionRecord, StoredKey

from .backends import isolated, raw_redis

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
IDLE = 14 * 86_400
# The previous layout's statements (Keyturn before issue 21), in its column order.
OLD_SESSION = (
    "INSERT INTO sessions (sid, sub, created_at, absolute_expires_at, head_jti, gen, last_seen_at, state, "
    "revoked_reason, revoked_at, user_agent, ip, client_id, claims) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, 'active', NULL, NULL, NULL, NULL, NULL, '{}')"
)
OLD_REFRESH = (
    "INSERT INTO refresh_tokens (jti, sid, gen, kid, issued_at, expires_at, rotated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
OLD_KEY = (
    "INSERT INTO signing_keys (kid, use, alg, material, public_jwk, created_at, active) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def record(sid: str, gen: int, kid: str, issued: float, rotated: float | None) -> RefreshRecord:
    return RefreshRecord(f"{sid}-{gen}", sid, gen, kid, int(issued), int(issued) + IDLE, rotated)


def chains(kid: str) -> dict[str, list[RefreshRecord]]:
    """Each session's refresh records, oldest first; the last is its head."""
    return {
        "live": [record("live", 0, kid, NOW - 100, None)],
        "just-rotated": [
            record("just-rotated", 0, kid, NOW - 600, NOW - 2),
            record("just-rotated", 1, kid, NOW - 2, None),
        ],
        "long-ago": [
            record("long-ago", 0, kid, NOW - 7200, NOW - 3600),
            record("long-ago", 1, kid, NOW - 3600, NOW - 1800),
            record("long-ago", 2, kid, NOW - 1800, None),
        ],
    }


def session_of(records: Sequence[RefreshRecord]) -> SessionRecord:
    head = records[-1]
    created = records[0].issued_at
    return SessionRecord(
        head.sid, "alice", created, created + 30 * 86_400, head.jti, head.gen, head.issued_at
    )


def write_sql(params: str, execute: object, keys: Sequence[StoredKey], kid: str) -> None:
    run = execute  # a cursor-like execute(sql, params)
    assert callable(run)
    for key in keys:
        run(
            OLD_KEY.replace("?", params),
            (key.kid, key.use, key.alg, key.material, key.public_jwk, key.created_at, key.active),
        )
    for records in chains(kid).values():
        s = session_of(records)
        run(
            OLD_SESSION.replace("?", params),
            (s.sid, s.sub, s.created_at, s.absolute_expires_at, s.head_jti, s.gen, s.last_seen_at),
        )
        for r in records:
            run(
                OLD_REFRESH.replace("?", params),
                (r.jti, r.sid, r.gen, r.kid, r.issued_at, r.expires_at, r.rotated_at),
            )


def write_previous_layout(name: str, url: str, keys: Sequence[StoredKey], kid: str) -> None:
    if name == "sqlite":
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            for script in sqlite.MIGRATIONS[:2]:  # the previous version's migrations, unchanged
                conn.executescript(script)
            conn.execute("PRAGMA user_version = 2")
            write_sql("?", conn.execute, keys, kid)
            conn.commit()
    elif name == "postgresql":
        with psycopg.connect(postgres.conninfo_from_url(url)) as conn:
            conn.execute("CREATE TABLE keyturn_schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO keyturn_schema_version (version) VALUES (2)")
            for script in postgres.MIGRATIONS[:2]:
                conn.execute(script)  # type: ignore[arg-type]
            write_sql("%s", conn.execute, keys, kid)
    else:
        write_previous_redis(url, keys, kid)


def write_previous_redis(url: str, keys: Sequence[StoredKey], kid: str) -> None:
    """The keys the previous create_session.lua and rotate.lua left behind."""
    with raw_redis(url) as (client, p):
        for n, key in enumerate(keys, start=1):
            client.hset(f"{p}keys", key.kid, key_json(key))
            client.zadd(f"{p}keys:order", {key.kid: n})
        client.set(f"{p}keys:seq", len(keys))
        for records in chains(kid).values():
            s = session_of(records)
            words = session_words(s)
            client.hset(f"{p}s:{s.sid}", mapping=dict(zip(words[::2], words[1::2], strict=True)))
            client.zadd(f"{p}sessions", {s.sid: s.created_at})
            client.zadd(f"{p}sessions:exp", {s.sid: s.absolute_expires_at})
            client.zadd(f"{p}sub:{s.sub}", {s.sid: s.created_at})
            for r in records:
                fields = {
                    "jti": r.jti,
                    "sid": r.sid,
                    "gen": r.gen,
                    "kid": r.kid,
                    "issued_at": r.issued_at,
                    "expires_at": r.expires_at,
                }
                if r.rotated_at is not None:
                    fields["rotated_at"] = repr(r.rotated_at)
                client.hset(f"{p}r:{r.jti}", mapping=fields)
                client.zadd(f"{p}refresh:exp", {r.jti: r.expires_at})
                client.sadd(f"{p}sj:{s.sid}", r.jti)


def leftovers(name: str, url: str) -> int:
    """Records of the previous layout still there after the upgrade."""
    if name == "sqlite":
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            found = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'refresh_tokens'")
            return int(found.fetchone()[0])
    if name == "postgresql":
        with psycopg.connect(postgres.conninfo_from_url(url)) as conn:
            row = conn.execute("SELECT to_regclass('refresh_tokens') IS NOT NULL").fetchone()
            assert row is not None
            return int(row[0])
    with raw_redis(url) as (client, p):
        return sum(1 for pattern in ("r:*", "sj:*", "refresh:exp") for _ in client.scan_iter(f"{p}{pattern}"))


@pytest.mark.parametrize("name", ["sqlite", "postgresql", "redis"])
async def test_a_store_of_the_previous_layout_upgrades_with_its_sessions_live(
    name: str, tmp_path: Path, anyio_backend: str
) -> None:
    """Every session refreshes after the upgrade; the token rotated two seconds before it replays the
    head byte for byte; a token rotated an hour before is still caught as reuse."""
    settings = make_settings()
    assert settings.secret_key is not None
    master = MasterKey(settings.secret_key.get_secret_value())
    keys = [
        new_access_key(settings.access_token_algorithm, master, NOW - 7200),
        new_refresh_key(master, NOW - 7200),
    ]
    kid = keys[1].kid
    with isolated(name, tmp_path) as place:
        write_previous_layout(name, place.url, keys, kid)
        store = open_store(place.url)
        await store.open()  # migrates
        try:
            assert leftovers(name, place.url) == 0
            ts = await make_service(settings, clock=FrozenClock(NOW), store=store)
            codec = ts.service.codec
            old = chains(kid)
            token = {r.jti: codec.encode_refresh("alice", r) for records in old.values() for r in records}

            # The token rotated just before the upgrade: its grace replay answers the head, byte for byte.
            replayed = await ts.service.refresh(token["just-rotated-0"])
            assert replayed.refresh_token == token["just-rotated-1"]

            # Every session's head refreshes.
            for records in old.values():
                pair = await ts.service.refresh(token[records[-1].jti])
                assert pair.session_id == records[-1].sid
                assert pair.refresh_token != token[records[-1].jti]
                assert (await ts.service.refresh(pair.refresh_token)).session_id == records[-1].sid

            # A token rotated an hour before the upgrade is reuse: the session ends.
            with pytest.raises(RefreshTokenReused):
                await ts.service.refresh(token["long-ago-0"])
            ended = await store.get_session("long-ago")
            assert ended is not None
            assert (ended.state, ended.revoked_reason) == ("revoked", "reuse")
        finally:
            await store.close()
