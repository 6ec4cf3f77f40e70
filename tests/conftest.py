from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from ._secrets import MADE


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# What looks like a JWT or a piece of one: a token's start, a long segment after a dot, or the tail that a
# truncated repr leaves after its "...". A failure report must never carry a token.
_JWT_LIKE = re.compile(
    r"eyJ[A-Za-z0-9_\-.]*"
    r"|[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]{40,}[A-Za-z0-9_\-.]*"
    r"|(?<=\.\.\.)[A-Za-z0-9_\-.]{16,}"
)
# An argument or local whose name says it is a password or a secret, as a traceback shows it.
_SECRET_ARGUMENT = re.compile(r"(\b\w*(?:password|secret)\w*\s*=\s*)(['\"]).*?\2", re.IGNORECASE)
_WITHHELD = "<token withheld>"


def _scrub(text: str) -> str:
    for secret in MADE:
        text = text.replace(secret, "<secret withheld>")
    return _SECRET_ARGUMENT.sub(r"\1<secret withheld>", _JWT_LIKE.sub(_WITHHELD, text))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Scrub tokens, passwords and secrets out of failure reports (tracebacks show call arguments)."""
    report: pytest.TestReport = yield
    if report.longrepr is not None:
        text = str(report.longrepr)
        scrubbed = _scrub(text)
        if scrubbed != text:
            report.longrepr = scrubbed
    report.sections = [(title, _scrub(content)) for title, content in report.sections]
    return report
