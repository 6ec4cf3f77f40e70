"""What a new user of the Python client meets: a token file under ~, the requests adapter without requests."""

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


def test_the_requests_adapter_without_requests_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """``keyturn[requests]`` brings requests; without it the import error says so."""
    import sys

    import keyturn.client

    for name in [n for n in sys.modules if n == "requests" or n.startswith("requests.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delitem(sys.modules, "keyturn.client.requests_auth", raising=False)
    monkeypatch.delattr(keyturn.client, "requests_auth", raising=False)  # else ``from . import`` finds it
    monkeypatch.setitem(sys.modules, "requests", None)

    with pytest.raises(ModuleNotFoundError, match=r"pip install 'keyturn\[requests\]'"):
        keyturn.client.KeyturnRequestsAuth  # noqa: B018 - the attribute's import is what is tested


def test_the_requests_adapter_is_importable_from_keyturn_client() -> None:
    """The README and docs/client.md import it from ``keyturn.client``."""
    from keyturn.client import KeyturnRequestsAuth
    from keyturn.client.requests_auth import KeyturnRequestsAuth as where_it_lives

    assert KeyturnRequestsAuth is where_it_lives
