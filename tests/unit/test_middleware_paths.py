"""Exempt paths of the ASGI and WSGI middlewares: whole path segments, never a bare string prefix."""

from __future__ import annotations

import pytest

from keyturn.middleware._paths import Exempt


@pytest.mark.parametrize(
    ("path", "exempt"),
    [
        ("/status", True),
        ("/status/", True),
        ("/status/db", True),
        ("/statusx", False),
        ("/public", True),
        ("/public/page", True),
        ("/publicity", False),
        ("/", False),
        ("/orders", False),
    ],
)
def test_exempt_paths_match_whole_segments(path: str, exempt: bool) -> None:
    assert Exempt(["/status", "/public/"])(path) is exempt


def test_no_exempt_paths_is_falsy_and_exempts_nothing() -> None:
    nothing = Exempt([])

    assert not nothing
    assert not nothing("/")
    assert not nothing("/status")


def test_the_root_exempts_everything_below_it() -> None:
    """Each exempt path covers everything below it; for ``/`` that is the whole app."""
    root = Exempt(["/"])

    assert root("/")
    assert root("/orders")
