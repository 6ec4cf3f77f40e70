from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
