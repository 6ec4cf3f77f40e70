"""bench/compare/ab.py refuses a command line it would run wrongly, before it starts anything.

``ab`` is imported from ``bench/compare`` as it runs there (its directory on the path to import).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

COMPARE = Path(__file__).resolve().parents[2] / "bench" / "compare"


def _ab() -> ModuleType:
    sys.path.insert(0, str(COMPARE))
    try:
        return importlib.import_module("ab")
    finally:
        sys.path.remove(str(COMPARE))


ab = _ab()


def test_a_postgresql_setting_is_refused_when_the_store_is_redis() -> None:
    """On Redis, ``pg=`` would have been put into the store's URL unnoticed."""
    with pytest.raises(ValueError, match=r"pg=synchronous_commit=off .* the store is redis"):
        ab.parse_variants(["plain:", "async:pg=synchronous_commit=off"], "redis")


def test_a_postgresql_setting_reaches_the_postgresql_store() -> None:
    """The same variant on PostgreSQL becomes the connections' options."""
    (variant,) = ab.parse_variants(["async:pg=synchronous_commit=off"], "postgresql")
    assert variant.env == {"options": " -csynchronous_commit=off"}


def test_a_label_given_twice_is_refused() -> None:
    """Two variants of one label would print as one and could not be told apart in the summary."""
    with pytest.raises(ValueError, match="more than once: same"):
        ab.parse_variants(["same:", "other:", "same:A=1"], "postgresql")


def test_the_command_line_reports_a_refused_variant_as_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse's error: the usage, the reason, exit status 2, and nothing started."""
    monkeypatch.setattr(sys, "argv", ["ab.py", "--store", "redis", "a:", "b:pg=jit=off"])
    with pytest.raises(SystemExit) as exited:
        ab.main()
    assert exited.value.code == 2
    assert "pg=jit=off sets a PostgreSQL setting" in capsys.readouterr().err
