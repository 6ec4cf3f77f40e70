"""Fixtures of the example app's tests: one example app on a real uvicorn for the package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._example import ExampleApp, running_example


@pytest.fixture(scope="package")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExampleApp]:
    """``python -m examples.fastapi_app serve`` on a fresh data directory (SQLite for both tables)."""
    with running_example(tmp_path_factory.mktemp("example")) as app:
        yield app
