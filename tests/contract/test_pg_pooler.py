"""The PostgreSQL store behind a pooler in transaction mode: a real PgBouncer 1.18 (Debian 12's) with two
server connections for the store's ten, so consecutive statements of one pooled connection run on
different server connections. Nothing may live in a server connection's session: not the function
batches of takes call (it was made in ``pg_temp`` per pooled connection), not a prepared statement
(psycopg prepares one after five runs), not a startup ``options`` parameter (PgBouncer refuses it).

Real refreshes through the session service, concurrent ones (so they go in batches), a rate limit, a
replay race and revocations; then, on PostgreSQL directly, the store whose batch function is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from keyturn.clock import FrozenClock
from keyturn.errors import ConfigError, RateLimited, RefreshTokenReused, SessionRevoked, StoreUnavailable
from keyturn.ratelimit import RateLimit, RateLimiter, RateLimitPolicy
from keyturn.store._pg_takes import TAKES_FIRST
from keyturn.store.postgres import MIGRATIONS, PostgresStore, conninfo_from_url, pooler_from_url
from keyturn.testing import TestService, make_service

from ._bouncer import Bouncer, bouncer
from .backends import POSTGRES_URL, BackendUnderTest, isolated

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
SESSIONS = 24
ROUNDS = 12  # every statement of a refresh runs more than psycopg's prepare threshold (5) times


@pytest.fixture
def pgbouncer() -> Iterator[Bouncer]:
    with bouncer() as running:
        yield running


@pytest.fixture
async def bounced(pgbouncer: Bouncer) -> AsyncIterator[PostgresStore]:
    """A store through PgBouncer in transaction mode (``?pooler=transaction``), open."""
    store = PostgresStore.from_url(pgbouncer.url)
    await store.open()  # migrates, through the pooler too
    try:
        yield store
    finally:
        await store.close()


def _limiter(ts: TestService, per_ip: RateLimit) -> RateLimiter:
    policy = RateLimitPolicy(refresh_per_ip=per_ip, refresh_per_session=RateLimit(1000, 1.0))
    return RateLimiter(ts.store, policy, username_key=b"k" * 16, clock=ts.clock)


async def test_refreshes_through_pgbouncer_in_transaction_mode(
    bounced: PostgresStore, pgbouncer: Bouncer, statements: list[str]
) -> None:
    """Every answer is the one PostgreSQL alone would give. Half-way through the rounds PgBouncer's server
    connections are ended (a server restart, a failover, ``server_lifetime``): the new ones it opens
    have nothing of the old ones' sessions."""
    ts = await make_service(clock=FrozenClock(NOW), store=bounced)
    clock = ts.clock
    assert isinstance(clock, FrozenClock)
    roomy = _limiter(ts, RateLimit(100_000, 1.0))
    pairs = [await ts.service.start(f"user{i % 4}") for i in range(SESSIONS)]

    # Rounds of concurrent refreshes, each session once a round: every one rotates, in batches.
    for round_ in range(ROUNDS):
        if round_ == ROUNDS // 2:
            assert pgbouncer.close_server_connections() >= 1
        clock.advance(ts.settings.grace_period + 1)  # the last round's tokens are spent, not in grace
        statements.clear()
        new = await asyncio.gather(
            *(ts.service.refresh(p.refresh_token, limits=roomy.refresh("192.0.2.1")) for p in pairs)
        )
        assert [n.session_id for n in new] == [p.session_id for p in pairs]
        assert all(n.refresh_token != p.refresh_token for n, p in zip(new, pairs, strict=True))
        batches = [sql for sql in statements if "FROM keyturn_take_many(" in sql]
        assert 1 <= len(batches) < SESSIONS, "the takes went in batches"
        pairs = new

    # One session refreshed by eight tabs at once: one rotation, every tab gets the same new token.
    clock.advance(ts.settings.grace_period + 1)
    tabs = await asyncio.gather(*(ts.service.refresh(pairs[0].refresh_token) for _ in range(8)))
    assert len({t.refresh_token for t in tabs}) == 1
    assert tabs[0].refresh_token != pairs[0].refresh_token

    # An address's bucket of three, asked by ten refreshes at once (one batch): three pass.
    clock.advance(ts.settings.grace_period + 1)
    tight = _limiter(ts, RateLimit(3, 60.0))
    answers = await asyncio.gather(
        *(ts.service.refresh(p.refresh_token, limits=tight.refresh("198.51.100.7")) for p in pairs[1:11]),
        return_exceptions=True,
    )
    assert sum(isinstance(a, RateLimited) for a in answers) == 7, answers
    assert sum(not isinstance(a, BaseException) for a in answers) == 3, answers

    # A revocation, a subject's sessions ended, and a reused token: each refused from then on.
    assert await ts.service.revoke(pairs[12].session_id)
    ended = await ts.service.revoke_all("user3")
    assert set(ended) >= {p.session_id for p in pairs[3::4]} - {pairs[12].session_id}
    refused = await asyncio.gather(
        *(ts.service.refresh(p.refresh_token) for p in (pairs[12], pairs[3], pairs[7])),
        return_exceptions=True,
    )
    assert all(isinstance(a, SessionRevoked) for a in refused), refused
    clock.advance(ts.settings.grace_period + 1)
    with pytest.raises(RefreshTokenReused):
        await ts.service.refresh(pairs[0].refresh_token)  # rotated by the tabs above
    feed = {r.value for r in await ts.store.revocations_since(0, clock.now())}
    assert feed >= {pairs[12].session_id, pairs[3].session_id, pairs[0].session_id}


@pytest.fixture
def place(tmp_path: Path) -> Iterator[BackendUnderTest]:
    with isolated("postgresql", tmp_path) as place:
        yield place


async def test_a_store_whose_batch_function_is_gone_takes_one_refresh_at_a_time(
    place: BackendUnderTest, statements: list[str]
) -> None:
    """The function dropped under a running store (or never made: no PL/pgSQL): its batch fails with
    ``UndefinedFunction`` and applied nothing, so each of its refreshes runs again alone, and every later
    one goes alone from the start; none fails."""
    store = PostgresStore.from_url(place.url)
    await store.open()
    try:
        ts = await make_service(clock=FrozenClock(NOW), store=store)
        limiter = _limiter(ts, RateLimit(100_000, 1.0))
        pairs = [await ts.service.start("alice") for _ in range(8)]
        with psycopg.connect(conninfo_from_url(place.url), autocommit=True) as conn:
            conn.execute("DROP FUNCTION keyturn_take_many")
        for _ in range(2):
            statements.clear()
            pairs = await asyncio.gather(
                *(ts.service.refresh(p.refresh_token, limits=limiter.refresh("192.0.2.1")) for p in pairs)
            )
            assert len(pairs) == 8
        assert not [sql for sql in statements if "keyturn_take_many" in sql], "the second round went alone"
    finally:
        await store.close()


def test_the_pooler_parameter_is_keyturns_own() -> None:
    """``pooler`` is taken out of the URL (libpq refuses names it does not know); ``transaction`` leaves the
    statement timeout out of the startup ``options``; any other value is a configuration error."""
    base = "postgresql://kt@db.example:6432/keyturn"
    assert "statement_timeout=5000" in conninfo_from_url(base)
    assert pooler_from_url(base) == "session"
    through = conninfo_from_url(f"{base}?sslmode=require&pooler=transaction")
    assert "pooler" not in through
    assert "options" not in through
    assert "sslmode=require" in through
    assert pooler_from_url(f"{base}?sslmode=require&pooler=transaction") == "transaction"
    assert "statement_timeout=5000" in conninfo_from_url(f"{base}?pooler=session")
    with pytest.raises(ConfigError, match="pooler"):
        conninfo_from_url(f"{base}?pooler=statement")


@pytest.fixture
def without_plpgsql() -> Iterator[str]:
    """A store URL in a database of its own without PL/pgSQL (a superuser drops it; trust auth, as here)."""
    from psycopg import sql

    from .backends import POSTGRES_URL, require_server

    require_server("postgresql")
    base = POSTGRES_URL.rpartition("/")[0]
    name = f"kt_noplpgsql_{secrets.token_hex(4)}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(f"{base}/{name}", autocommit=True) as conn:
            conn.execute("DROP EXTENSION plpgsql")
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


async def test_a_server_without_plpgsql_migrates_and_takes_one_refresh_at_a_time(
    without_plpgsql: str, statements: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The migration that makes the batch function is passed over with a warning (the others are
    applied), and concurrent refreshes with their takes all pass, each take-and-read alone."""
    store = PostgresStore.from_url(without_plpgsql)
    with caplog.at_level(logging.WARNING, logger="keyturn.store"):
        await store.open()
    assert "PostgreSQL schema version 7 passed over: PL/pgSQL is not installed" in caplog.text
    try:
        with psycopg.connect(conninfo_from_url(without_plpgsql)) as conn:
            version = conn.execute("SELECT version FROM keyturn_schema_version").fetchone()
            assert version == (len(MIGRATIONS),)
        ts = await make_service(clock=FrozenClock(NOW), store=store)
        pairs = [await ts.service.start("alice") for _ in range(6)]
        tight = _limiter(ts, RateLimit(3, 60.0))
        answers = await asyncio.gather(
            *(ts.service.refresh(p.refresh_token, limits=tight.refresh("192.0.2.9")) for p in pairs),
            return_exceptions=True,
        )
        assert sum(isinstance(a, RateLimited) for a in answers) == 3, answers
        pairs = [p if isinstance(a, BaseException) else a for a, p in zip(answers, pairs, strict=True)]
        statements.clear()
        roomy = _limiter(ts, RateLimit(100_000, 1.0))
        await asyncio.gather(
            *(ts.service.refresh(p.refresh_token, limits=roomy.refresh("192.0.2.10")) for p in pairs)
        )
        assert not [sql for sql in statements if "keyturn_take_many" in sql]
        assert len([sql for sql in statements if sql.startswith(TAKES_FIRST)]) == len(pairs)  # each alone
    finally:
        await store.close()


async def test_a_function_passed_over_is_made_at_the_next_open_once_plpgsql_can_be_used(
    without_plpgsql: str, statements: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Migration 7 passed over (no PL/pgSQL) leaves the schema at version 7 without the batch function; once
    PL/pgSQL is installed, the next open (a start, ``keyturn migrate``) makes it, and refreshes go in
    batches again, not one at a time for good."""
    store = PostgresStore.from_url(without_plpgsql)
    await store.open()
    await store.close()
    assert "PostgreSQL schema version 7 passed over" in caplog.text
    with psycopg.connect(conninfo_from_url(without_plpgsql), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION plpgsql")
    caplog.clear()
    store = PostgresStore.from_url(without_plpgsql)
    with caplog.at_level(logging.INFO, logger="keyturn.store"):
        await store.open()
    assert "keyturn_take_many (schema version 7) made" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    try:
        ts = await make_service(clock=FrozenClock(NOW), store=store)
        roomy = _limiter(ts, RateLimit(100_000, 1.0))
        pairs = [await ts.service.start("alice") for _ in range(8)]
        statements.clear()
        await asyncio.gather(
            *(ts.service.refresh(p.refresh_token, limits=roomy.refresh("192.0.2.11")) for p in pairs)
        )
        batches = [sql for sql in statements if "FROM keyturn_take_many(" in sql]
        alone = [sql for sql in statements if sql.startswith(TAKES_FIRST)]
        assert 1 <= len(batches) < len(pairs), "the takes went in batches"
        assert not alone, "none alone"
    finally:
        await store.close()


@contextlib.contextmanager
def app_role(url: str) -> Iterator[str]:
    """A store URL for a role of its own that may use the tables of ``url``'s schema (made so far) but not
    create in it: an application role beside the schema's owner. Dropped afterwards."""
    from psycopg import sql

    role = f"kt_app_{secrets.token_hex(4)}"
    with psycopg.connect(conninfo_from_url(url), autocommit=True) as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()
        assert schema is not None
        names = {"role": sql.Identifier(role), "schema": sql.Identifier(schema[0])}
        conn.execute(sql.SQL("CREATE ROLE {role} LOGIN").format(**names))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {schema} TO {role}").format(**names))
        conn.execute(sql.SQL("GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {role}").format(**names))
        conn.execute(sql.SQL("GRANT ALL ON ALL SEQUENCES IN SCHEMA {schema} TO {role}").format(**names))
    assert "@" not in url, "the test database's URL names its user: give this test another way in"
    try:
        yield url.replace("://", f"://{role}@", 1)
    finally:
        with psycopg.connect(conninfo_from_url(url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {role}").format(**names))
            conn.execute(sql.SQL("DROP ROLE {role}").format(**names))


async def test_a_role_that_may_not_create_the_function_stops_the_upgrade(place: BackendUnderTest) -> None:
    """Migration 7 is passed over only where PL/pgSQL cannot be used: a role that may use it but may not
    create in the schema (an application role beside the owner) gets the upgrade refused, loudly, as
    every other migration's; the schema stays at version 6 with nothing written."""
    with psycopg.connect(conninfo_from_url(place.url), autocommit=True) as conn, conn.transaction():
        conn.execute("CREATE TABLE keyturn_schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO keyturn_schema_version (version) VALUES (6)")
        for script in MIGRATIONS[:6]:
            conn.execute(script)
    with app_role(place.url) as url:
        store = PostgresStore.from_url(url)
        try:
            with pytest.raises(StoreUnavailable, match="permission denied for schema"):
                await store.open()
        finally:
            await store.close()
        with psycopg.connect(conninfo_from_url(place.url)) as conn:
            assert conn.execute("SELECT version FROM keyturn_schema_version").fetchone() == (6,)


async def test_a_role_that_may_not_create_the_missing_function_starts_without_it(
    place: BackendUnderTest, statements: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A schema at version 7 whose function is missing, opened by a role that may not create in it: the
    open tries to make it, is refused, says so in a warning and starts; refreshes go one at a time."""
    owner = PostgresStore.from_url(place.url)
    await owner.open()
    await owner.close()
    with psycopg.connect(conninfo_from_url(place.url), autocommit=True) as conn:
        conn.execute("DROP FUNCTION keyturn_take_many")
    with app_role(place.url) as url:
        store = PostgresStore.from_url(url)
        with caplog.at_level(logging.WARNING, logger="keyturn.store"):
            await store.open()
        assert "keyturn_take_many (schema version 7) is missing and cannot be made: permission denied" in (
            caplog.text
        )
        try:
            ts = await make_service(clock=FrozenClock(NOW), store=store)
            roomy = _limiter(ts, RateLimit(100_000, 1.0))
            pairs = [await ts.service.start("alice") for _ in range(4)]
            statements.clear()
            await asyncio.gather(
                *(ts.service.refresh(p.refresh_token, limits=roomy.refresh("192.0.2.12")) for p in pairs)
            )
            assert not [sql for sql in statements if "keyturn_take_many" in sql]
            assert len([sql for sql in statements if sql.startswith(TAKES_FIRST)]) == len(pairs)
        finally:
            await store.close()


async def test_an_unexpected_failure_making_the_missing_function_stops_the_open(
    place: BackendUnderTest,
) -> None:
    """Only a refused privilege lets the open go on without the function: any other failure making it (here
    a read-only transaction, as on a standby) stops the open, as a migration's does."""
    owner = PostgresStore.from_url(place.url)
    await owner.open()
    await owner.close()
    with psycopg.connect(conninfo_from_url(place.url), autocommit=True) as conn:
        conn.execute("DROP FUNCTION keyturn_take_many")
        schema = conn.execute("SELECT current_schema()").fetchone()
    assert schema is not None
    options = f'-csearch_path="{schema[0]}" -cdefault_transaction_read_only=on'
    store = PostgresStore.from_url(f"{POSTGRES_URL}?options={quote(options)}")
    try:
        with pytest.raises(StoreUnavailable, match="read-only transaction"):
            await store.open()
    finally:
        await store.close()
