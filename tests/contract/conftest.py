from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from keyturn.typing import Backend

from .backends import BACKENDS, BackendUnderTest, isolated


@pytest.fixture(params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str
) -> AsyncIterator[BackendUnderTest]:
    """An isolated place of one backend: its own file, schema or key prefix."""
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
