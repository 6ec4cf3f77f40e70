from __future__ import annotations

import pytest

from keyturn.clock import FrozenClock, SystemClock
from keyturn.testing import TestService, make_service

from ._jose import Scene, make_scene


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def ts(clock: FrozenClock, anyio_backend: str) -> TestService:
    """A session service on a memory store, ES256 access keys, time frozen at ``clock``."""
    return await make_service(clock=clock)


@pytest.fixture
async def live(anyio_backend: str) -> TestService:
    """A session service on the wall clock, for tests where many threads race in real time."""
    return await make_service(clock=SystemClock())


@pytest.fixture
async def scene(ts: TestService) -> Scene:
    """A live session of alice on ``ts``, with helpers to forge tokens around it."""
    return await make_scene(ts)
