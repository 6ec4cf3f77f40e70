from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._api import Api, api_server
from ._hostile import Hostile, hostile_server
from ._server import Cluster, cluster


@pytest.fixture
def one_server(tmp_path: Path) -> Iterator[Cluster]:
    """One ``keyturn serve`` on the SQLite default, with user ``alice``."""
    with cluster(tmp_path / "data", 1) as group:
        yield group


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[Cluster]:
    """Two ``keyturn serve`` processes sharing one SQLite file and one key set."""
    with cluster(tmp_path / "data", 2) as group:
        yield group


# The servers below are shared by several modules (package scope), which ``tests/conftest.py`` puts in one
# pytest-xdist group, so that each starts once in a run, as it did when those modules were one.


@pytest.fixture(scope="package", params=["serve", "embedded"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The session contract's server of the ``test_api_*`` modules (see ``_api.py``)."""
    with api_server(request.param, tmp_path_factory) as server:
        yield server


@pytest.fixture(scope="package")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    """The server of the ``test_hostile_*`` modules, a live session of alice's, and what is needed to forge
    tokens against it (see ``_hostile.py``)."""
    with hostile_server(tmp_path_factory) as server:
        yield server
