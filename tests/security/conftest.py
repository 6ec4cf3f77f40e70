"""Fixtures of the attack suite: the token service on every shared store backend, with a resource server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..contract.backends import SHARED_BACKENDS
from ..e2e._resource import ResourceApp
from ._services import EMBEDDED, Service, running_embedded, running_resource, running_service


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
