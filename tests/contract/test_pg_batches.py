"""The PostgreSQL store's rotations go in batches: those a process asks for in one turn of its event loop are
one statement, each still answered on its own, all applied or none, and two batches never deadlock.

Real PostgreSQL, real concurrency; only the statements are counted (psycopg's ``execute``, wrapped).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from keyturn.errors import SessionExpired, StoreUnavailable
from keyturn.ratelimit import RateLimit
from keyturn.store import postgres
from keyturn.store.postgres import PostgresStore
from keyturn.typing import (
    Limited,
    RateLimitResult,
    RateLimitTake,
    RefreshRecord,
    Reject,
    Rotate,
    SessionRecord,
    UserRecord,
)

from ._races import in_threads
from .backends import BackendUnderTest, isolated

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
SESSIONS = 48


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[BackendUnderTest]:
    """PostgreSQL only (in place of the contract conftest's every backend): its ``store`` opens on it."""
    with isolated("postgresql", tmp_path) as place:
        yield place


def _rotations(sent: list[str]) -> list[str]:
    return [sql for sql in sent if "UPDATE sessions" in sql]


async def _sessions(store: PostgresStore, count: int, prefix: str = "s") -> list[RefreshRecord]:
    heads = [
        RefreshRecord(f"{prefix}{i}-h0", f"{prefix}{i:03}", 0, "rk", int(NOW), int(NOW) + 1000)
        for i in range(count)
    ]
    for head in heads:
        await store.create_session(SessionRecord(head.sid, "alice", NOW, NOW + 5000, head.jti, 0, NOW), head)
    return heads


def _rotation(sid: str, read: str, new: str, gen: int = 1) -> tuple[object, ...]:
    """A rotation's parameters (as ``_sql.rotate_params``): ``sid``'s head from ``read`` to ``new``."""
    return (new, gen, "rk", int(NOW) + gen, int(NOW) + 1000 + gen, "", NOW + gen, sid, read)


async def _migrated(url: str) -> None:
    store = PostgresStore.from_url(url)
    await store.open()  # the schema is made
    await store.close()


async def _heads(store: PostgresStore, sids: list[str]) -> list[str]:
    found = [await store.get_session(sid) for sid in sids]
    return [s.head_jti if s else "" for s in found]


async def test_concurrent_refreshes_rotate_in_fewer_statements_each_with_its_own_answer(
    store: PostgresStore, backend: BackendUnderTest, statements: list[str]
) -> None:
    """Every rotation applied as decided; a refresh whose session moved between its read and its update
    lost its race (its batch's row changed nothing) and decided again under the row lock, as before."""
    heads = await _sessions(store, SESSIONS)
    moved = {head.sid for head in heads[::4]}
    decided: dict[str, int] = {}

    async def refresh(head: RefreshRecord) -> str:
        new = RefreshRecord(f"{head.sid}-h1", head.sid, 1, "rk", int(NOW) + 1, int(NOW) + 1001)

        def decide(session: SessionRecord | None, presented: RefreshRecord | None) -> Rotate:
            decided[head.sid] = decided.get(head.sid, 0) + 1
            if head.sid in moved and decided[head.sid] == 1:  # another process rotates it meanwhile
                other.execute("UPDATE sessions SET head_jti = 'elsewhere' WHERE sid = %s", (head.sid,))
            return Rotate(new, NOW + 1)

        outcome = await store.refresh(head.sid, head.jti, decide)
        assert outcome.session is not None
        return outcome.session.head_jti

    statements.clear()
    with psycopg.connect(backend.url, autocommit=True) as other:
        found = await asyncio.gather(*(refresh(head) for head in heads))
    assert found == [f"{head.sid}-h1" for head in heads]
    assert await _heads(store, [head.sid for head in heads]) == found
    assert decided == {head.sid: 2 if head.sid in moved else 1 for head in heads}
    rotations = _rotations(statements)
    # One per batch, and one for each lost race decided again (one a rotation before).
    assert len(rotations) < SESSIONS + len(moved), f"{len(rotations)} statements for {SESSIONS + len(moved)}"


async def test_a_batch_answers_each_rotation_on_its_own(store: PostgresStore, statements: list[str]) -> None:
    """In one batch: rows whose condition holds rotate, the others change nothing; a session twice in
    the batch rotates once, by the first whose head is still the head, as one after the other would."""
    heads = await _sessions(store, 6)
    sids = [head.sid for head in heads]
    statements.clear()
    rotations = store._rotations
    futures = [
        rotations.call(_rotation(sids[0], "s0-h0", "a")),  # rotates
        rotations.call(_rotation(sids[1], "stale", "b")),  # lost: its head moved on
        rotations.call(_rotation(sids[2], "s2-h0", "c")),
        rotations.call(_rotation(sids[0], "s0-h0", "a2")),  # lost: the first of s000 rotated it
        rotations.call(_rotation(sids[3], "stale", "d")),  # lost, then a rotation of s003 that holds
        rotations.call(_rotation(sids[3], "s3-h0", "d2")),
        rotations.call(_rotation(sids[4], "s4-h0", "e")),
    ]
    assert await asyncio.gather(*futures) == [1, 0, 1, 0, 0, 1, 1]
    assert await _heads(store, sids) == ["a", "s1-h0", "c", "d2", "e", "s5-h0"]
    # The batch, then the second rotation of s003 after the first of it lost.
    assert len(_rotations(statements)) == 2


async def test_a_failing_batch_fails_each_of_its_calls_and_writes_nothing(
    store: PostgresStore, backend: BackendUnderTest
) -> None:
    """A statement that fails on its last row (a trigger raises) fails every call of its batch with
    ``StoreUnavailable``; no row of it was written. The store goes on."""
    heads = await _sessions(store, 8)
    poison = (await _sessions(store, 1, prefix="zz"))[0]  # sorts last: the others are updated first
    with psycopg.connect(backend.url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse BEFORE UPDATE ON sessions FOR EACH ROW "
            f"WHEN (NEW.sid = '{poison.sid}') EXECUTE FUNCTION refuse()"
        )
    everyone = [*heads, poison]
    futures = [store._rotations.call(_rotation(h.sid, h.jti, f"{h.sid}-h1")) for h in everyone]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    assert len({id(r) for r in results}) == len(results)  # an error of its own each
    assert await _heads(store, [h.sid for h in everyone]) == [h.jti for h in everyone]
    # The store goes on: a batch without that session rotates.
    assert (
        await asyncio.gather(*(store._rotations.call(_rotation(h.sid, h.jti, "x")) for h in heads)) == [1] * 8
    )


def test_concurrent_batches_over_the_same_sessions_never_deadlock(
    backend: BackendUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four stores (threads of their own, as processes) each send batches rotating the same sessions, in
    shuffled orders, at once: a deadlock victim is not run again here (one attempt), so one would fail."""
    monkeypatch.setattr(postgres, "ATTEMPTS", 1)
    rounds, count = 15, 5000  # enough sessions that the update finds each one by its index
    sids = [f"s{i:05}" for i in range(count)]
    asyncio.run(_migrated(backend.url))
    with psycopg.connect(backend.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sessions (sid, sub, created_at, absolute_expires_at, head_jti, gen, last_seen_at) "
            "SELECT sid, 'alice', %s, %s, sid || '-h0', 0, %s FROM unnest(%s::text[]) AS sid",
            (NOW, NOW + 5000, NOW, sids),
        )
        conn.execute("ANALYZE sessions")

    async def storm(store: Any, n: int) -> int:
        assert isinstance(store, PostgresStore)
        rotated = 0
        shuffled = random.Random(n)
        for _ in range(rounds):
            order = shuffled.sample(sids[:100], 48)  # overlapping a lot
            heads = await _heads(store, order)
            futures = [
                store._rotations.call(_rotation(sid, head, f"{sid}-{n}-{random.random()}"))
                for sid, head in zip(order, heads, strict=True)
            ]
            rotated += sum(await asyncio.gather(*futures))
        return rotated

    rotated = in_threads(backend, storm, threads=4, per_thread=1)
    assert sum(rotated) > 0


async def test_a_batch_of_takes_answers_as_takes_one_after_another(
    store: PostgresStore, statements: list[str]
) -> None:
    """Refreshes from one address in one batch: its bucket passes as many as it would one after the
    other (three), in the order asked, and refuses the rest with the wait a take alone would give; each
    passing call's own per-session bucket is taken, a refused one's is not; the subject check is each
    call's own."""
    heads = await _sessions(store, 6)
    await store.add_user(UserRecord("alice", "x", NOW))
    by_address, by_session = RateLimit(3, 60.0), RateLimit(10, 60.0)

    async def refresh(head: RefreshRecord, user: str | None) -> object:
        new = RefreshRecord(f"{head.sid}-h1", head.sid, 1, "rk", int(NOW) + 1, int(NOW) + 1001)
        takes = [RateLimitTake("ip:1", by_address, NOW), RateLimitTake(f"sid:{head.sid}", by_session, NOW)]
        outcome = await store.refresh(head.sid, head.jti, lambda s, p: Rotate(new, NOW + 1), takes, user=user)
        return outcome.decision

    statements.clear()
    users = ["alice", None, "mallory", "alice", None, "alice"]
    decisions = await asyncio.gather(*(refresh(h, u) for h, u in zip(heads, users, strict=True)))
    assert [type(d).__name__ for d in decisions] == ["Rotate", "Rotate", "SubjectRefused"] + ["Limited"] * 3
    waits = [d.retry_after for d in decisions if isinstance(d, Limited)]
    assert waits == [pytest.approx(20.0)] * 3, waits  # one call every 20 s at the sustained rate
    assert len([sql for sql in statements if "FROM keyturn_take_many(" in sql]) == 1
    # Each passing call took one from its own session's bucket (10 - 1 left, 9 more pass); refused: none.
    for head, decision in zip(heads, decisions, strict=True):
        passed = [await store.rate_limit_take(f"sid:{head.sid}", by_session, NOW) for _ in range(10)]
        assert passed.count(RateLimitResult(True)) == (9 if not isinstance(decision, Limited) else 10)


def test_concurrent_batches_of_takes_over_the_same_buckets_never_deadlock(
    backend: BackendUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four stores each send batches of refreshes whose takes (two buckets each, new ones among them) cross
    each other's in shuffled orders: a deadlock victim is not run again (one attempt), so one would fail."""
    monkeypatch.setattr(postgres, "ATTEMPTS", 1)
    asyncio.run(_migrated(backend.url))
    limit = RateLimit(1_000_000, 1.0)

    async def storm(store: Any, n: int) -> int:
        assert isinstance(store, PostgresStore)
        shuffled = random.Random(n)
        taken = 0
        for round_ in range(20):
            keys = [f"b{round_}-{i}" for i in range(30)]  # new in this round, for every store at once

            async def one(first: str, second: str) -> object:
                takes = [RateLimitTake(first, limit, NOW), RateLimitTake(second, limit, NOW)]
                return (
                    await store.refresh("no-such-session", "x", lambda s, p: Reject(SessionExpired()), takes)
                ).decision

            pairs = [shuffled.sample(keys, 2) for _ in range(40)]
            decisions = await asyncio.gather(*(one(a, b) for a, b in pairs))
            taken += sum(isinstance(d, Reject) for d in decisions)
        return taken

    taken = in_threads(backend, storm, threads=4, per_thread=1)
    assert taken == [20 * 40] * 4


def test_revoking_a_subjects_sessions_beside_batches_of_rotations_never_deadlocks(
    backend: BackendUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One store revokes 20 subjects' sessions, one subject after another, while three others send batches
    rotating sessions of all of them. Each subject's sessions were made in the reverse of their ``sid``
    order, the order a batch locks them in: a revocation that locked them as made would close a cycle.
    A deadlock victim is not run again here (one attempt), so one would fail."""
    monkeypatch.setattr(postgres, "ATTEMPTS", 1)
    subjects, per_subject = 20, 20
    sids = [f"s{i:04}" for i in range(subjects * per_subject)]
    asyncio.run(_migrated(backend.url))
    with psycopg.connect(backend.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sessions (sid, sub, created_at, absolute_expires_at, head_jti, gen, last_seen_at) "
            "SELECT sid, 'u' || (n %% %s), %s - n, %s, sid || '-h0', 0, %s "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS v (sid, n)",
            (subjects, NOW, NOW + 5000, NOW, sids),
        )

    async def storm(store: Any, n: int) -> int:
        assert isinstance(store, PostgresStore)
        if n == 0:
            revoked = 0
            for subject in range(subjects):
                revoked += len(await store.revoke_subject(f"u{subject}", "logout", NOW, NOW + 60))
            return revoked
        shuffled = random.Random(n)
        for _ in range(30):
            order = shuffled.sample(sids, 48)
            heads = await _heads(store, order)
            await asyncio.gather(
                *(
                    store._rotations.call(_rotation(sid, head, f"{sid}-{n}-{random.random()}"))
                    for sid, head in zip(order, heads, strict=True)
                )
            )
        return 0

    answers = in_threads(backend, storm, threads=4, per_thread=1)
    assert sum(answers) == subjects * per_subject  # every session revoked, once
