from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from keyturn.store.redis import _records, _store
from keyturn.typing import Backend

from ._relay import BOUND
from .backends import BACKENDS, BackendUnderTest, isolated, require_server


@pytest.fixture(params=[*BACKENDS, "pgbouncer"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str
) -> AsyncIterator[BackendUnderTest]:
    """An isolated place of one backend: its own file, schema or key prefix; ``pgbouncer`` is PostgreSQL
    through a PgBouncer in transaction mode of the test's own (``_bouncer``)."""
    with isolated(request.param, tmp_path) as place:
        yield place


@pytest.fixture
async def store(backend: BackendUnderTest) -> AsyncIterator[Backend]:
    """An open store on ``backend``."""
    opened = backend.new_store()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def short_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Redis store's reply timeout cut to :data:`~._relay.BOUND` (the Redis server required), for the
    tests that stall or count its calls through a relay (``usefixtures("short_bound")``)."""
    require_server("redis")
    monkeypatch.setattr(_records, "REPLY_TIMEOUT", BOUND)
    monkeypatch.setattr(_store, "REPLY_TIMEOUT", BOUND)


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement PostgreSQL stores of this test send, in order (psycopg's async cursor)."""
    sent: list[str] = []
    execute = psycopg.AsyncCursor.execute

    async def counted(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return await execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", counted)
    return sent
