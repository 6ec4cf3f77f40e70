"""Store URLs that cannot work say why, in words that name the fix."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from keyturn.errors import ConfigError
from keyturn.store import open_store


def test_a_relative_sqlite_path_whose_directory_is_missing_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sqlite:///nonexistent/dir/x.db`` is relative: no tree is made under the working directory, and the
    error shows the four-slash spelling of the absolute path the user most likely meant."""
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigError) as refused:
        open_store("sqlite:///nonexistent/dir/x.db")

    assert "sqlite:////nonexistent/dir/x.db" in str(refused.value)
    assert str(tmp_path / "nonexistent" / "dir") in str(refused.value)
    assert not (tmp_path / "nonexistent").exists()


def test_an_absolute_sqlite_path_gets_its_directory(tmp_path: Path) -> None:
    """Four slashes say exactly where: the directory is made, as the data directory is."""
    assert open_store(f"sqlite:///{tmp_path / 'new' / 'x.db'}").path == tmp_path / "new" / "x.db"  # type: ignore[attr-defined]


def test_a_sqlite_path_in_an_existing_directory_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative paths work where their directory is there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()

    assert open_store("sqlite:///data/x.db").path == Path("data/x.db")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("url", "extra", "driver"),
    [("postgresql://127.0.0.1/x", "postgres", "psycopg"), ("redis://127.0.0.1/0", "redis", "redis")],
)
def test_a_missing_driver_names_the_extra_to_install(
    url: str, extra: str, driver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``keyturn[postgres]`` or ``keyturn[redis]`` the error says which extra, not a bare
    ``ModuleNotFoundError``."""
    for name in [n for n in sys.modules if n == driver or n.startswith(f"{driver}.")]:
        monkeypatch.delitem(sys.modules, name)
    for name in [n for n in sys.modules if n.startswith(("keyturn.store.postgres", "keyturn.store.redis"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, driver, None)  # an import of it now fails as if it were not installed

    with pytest.raises(ConfigError) as refused:
        open_store(url)

    assert f"pip install 'keyturn[{extra}]'" in str(refused.value)
