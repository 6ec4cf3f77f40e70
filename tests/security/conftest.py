"""Fixtures of the attack suite: the token service on every shared store backend, with a resource server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..contract.backends import SHARED_BACKENDS
from ..e2e._resource import ResourceApp
from ._services import EMBEDDED, Service, running_embedded, running_resource, running_service

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests on one ``service`` run on one pytest-xdist worker, so that each service (and its resource
    server) starts once, not once on every worker; the four services run side by side."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if item.path.is_relative_to(HERE) and callspec is not None and "service" in callspec.params:
            item.add_marker(pytest.mark.xdist_group(f"security-{callspec.params['service']}"))


@pytest.fixture(scope="package", params=[*SHARED_BACKENDS, EMBEDDED])
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """``keyturn serve`` (ES256) on SQLite, PostgreSQL and Redis in turn, then the example app embedding
    Keyturn; shared by the package's tests."""
    place = tmp_path_factory.mktemp(f"service-{request.param}")
    if request.param == EMBEDDED:
        with running_embedded("sqlite", place) as running:
            yield running
        return
    with running_service(request.param, place) as running:
        yield running


@pytest.fixture(scope="package")
def resource(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResourceApp]:
    """A FastAPI resource server behind Keyturn's middleware, trusting ``service``."""
    with running_resource(service, tmp_path_factory.mktemp("resource")) as app:
        yield app
