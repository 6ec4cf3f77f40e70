"""Tests that serve the real token service in this process (uvicorn on a thread, ``_client_live.py``).

The Python client's tests that prove I/O live here: a real server, real sockets, faults injected on the
client's transport or answered by the server on command. The client's decisions are tested without any
server in ``tests/unit`` (the flows as generator steps).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from ._client_live import Harness, LiveService, live_service


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
