"""One version: the Python package's (``keyturn.__version__``, which pyproject.toml reads) and the browser
client's package.json say the same."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import keyturn

ROOT = Path(__file__).parents[2]


def test_pyproject_reads_the_version_from_the_package() -> None:
    """pyproject.toml names no version of its own; it takes ``keyturn.__version__``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())

    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "keyturn.__version__"}


def test_the_browser_client_has_the_same_version() -> None:
    """A release bumps ``keyturn.__version__`` and package.json together; this says when one was missed."""
    package = json.loads((ROOT / "clients" / "js" / "package.json").read_text())

    assert package["version"] == keyturn.__version__
