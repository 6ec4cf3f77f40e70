"""``FileTokenStore("~/...")`` means the home directory, as docs/client.md writes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyturn.client import FileTokenStore


def test_a_leading_tilde_is_the_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, a folder named ``~`` was made in the working directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)

    store = FileTokenStore("~/.config/myapp/tokens.json")

    assert store.path == tmp_path / "home" / ".config" / "myapp" / "tokens.json"
    assert not (tmp_path / "~").exists()
