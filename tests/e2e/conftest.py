from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._server import Cluster, cluster

# What looks like a JWT or a piece of one: a token's start, a long segment after a dot, or the tail that a
# truncated repr leaves after its "...". A failure report must never carry a token.
_JWT_LIKE = re.compile(
    r"eyJ[A-Za-z0-9_\-.]*"
    r"|[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]{40,}[A-Za-z0-9_\-.]*"
    r"|(?<=\.\.\.)[A-Za-z0-9_\-.]{16,}"
)
_WITHHELD = "<token withheld>"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Scrub tokens out of e2e failure reports (assertion introspection shows call arguments)."""
    report: pytest.TestReport = yield
    if report.longrepr is not None:
        text = str(report.longrepr)
        scrubbed = _JWT_LIKE.sub(_WITHHELD, text)
        if scrubbed != text:
            report.longrepr = scrubbed
    report.sections = [(title, _JWT_LIKE.sub(_WITHHELD, content)) for title, content in report.sections]
    return report


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
