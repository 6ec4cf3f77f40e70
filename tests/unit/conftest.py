from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from keyturn.clock import FrozenClock
from keyturn.testing import TestService, make_service

from ._client_live import Harness, LiveService, live_service
from ._jose import Scene, make_scene


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def ts(clock: FrozenClock, anyio_backend: str) -> TestService:
    """A session service on a memory store, ES256 access keys, time frozen at ``clock``."""
    return await make_service(clock=clock)


@pytest.fixture
async def scene(ts: TestService) -> Scene:
    """A live session of alice on ``ts``, with helpers to forge tokens around it."""
    return await make_scene(ts)


# -- the Python client's tests: a real token service on uvicorn and a client harness on it ---------------


@pytest.fixture(scope="module")
def service() -> Iterator[LiveService]:
    with live_service() as live:
        yield live


@pytest.fixture
def h(service: LiveService) -> Iterator[Harness]:
    harness = Harness.on(service)
    yield harness
    harness.close()


@pytest.fixture
async def ah(service: LiveService, anyio_backend: str) -> AsyncIterator[Harness]:
    harness = Harness.on(service)
    yield harness
    await harness.aclose()
