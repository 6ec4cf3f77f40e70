"""``manage.py check`` warns of the ``SIMPLE_JWT`` settings a project set that Keyturn does not honour
(docs/django.md, SimpleJWT's settings): a switch must not drop one silently."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from ._project import EXAMPLE, ExampleProject
from ._simplejwt_defaults import simplejwt_defaults
from .conftest import database_url

SETTINGS_PATH = str(Path(__file__).resolve().parent)


def check_ids(tmp_path: Path, tokens: str, extra: dict[str, str] | None = None) -> list[str]:
    with database_url("sqlite", tmp_path) as url:
        env = ExampleProject(tmp_path, url).environment(tokens, extra)
        done = subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=EXAMPLE,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    return sorted(re.findall(r"\(keyturn\.W\d+\)", done.stdout + done.stderr))


def test_settings_keyturn_does_not_honour_are_warned_of(tmp_path: Path) -> None:
    """No rotation (a frontend that keeps its first refresh token is logged out after the grace period),
    a serializer and a user rule of the project's own (not run), a SimpleJWT access lifetime other than
    Keyturn's: one warning each. Before: ``check`` said nothing."""
    loose = {"DJANGO_SETTINGS_MODULE": "_loose_settings", "PYTHONPATH": SETTINGS_PATH}
    assert check_ids(tmp_path, "keyturn", loose) == [
        "(keyturn.W001)",
        "(keyturn.W002)",
        "(keyturn.W003)",
        "(keyturn.W004)",
    ]


def test_the_example_projects_simplejwt_settings_draw_no_warning(tmp_path: Path) -> None:
    """The example's ``SIMPLE_JWT`` (rotation and blacklist on, SimpleJWT's serializers, the same access
    lifetime as ``KEYTURN``'s) is one Keyturn honours: no warning."""
    assert check_ids(tmp_path, "keyturn") == []


def test_a_project_that_never_used_simplejwt_draws_no_warning(tmp_path: Path) -> None:
    """docs/django.md's plain setup (no ``SIMPLE_JWT``, none of SimpleJWT's apps) has nothing to switch
    from: no ``ROTATE_REFRESH_TOKENS`` warning on every ``runserver`` and ``migrate``. Before: W001."""
    plain = {"DJANGO_SETTINGS_MODULE": "_plain_settings", "PYTHONPATH": SETTINGS_PATH}
    assert check_ids(tmp_path, "keyturn", plain) == []


@pytest.mark.parametrize(("keyturns", "expected"), [("900", ["(keyturn.W004)"]), ("300", [])])
def test_simplejwts_default_access_lifetime_is_compared(
    tmp_path: Path, keyturns: str, expected: list[str]
) -> None:
    """A ``SIMPLE_JWT`` without ``ACCESS_TOKEN_LIFETIME`` gave 5-minute access tokens (SimpleJWT's
    default): W004 when ``KEYTURN['ACCESS_TOKEN_LIFETIME']`` is another (Keyturn's default, 900 s), none
    when it is 300. Before: no warning without an explicit setting."""
    default = {
        "DJANGO_SETTINGS_MODULE": "_default_lifetime_settings",
        "PYTHONPATH": SETTINGS_PATH,
        "ACCESS_LIFETIME": keyturns,
    }
    assert check_ids(tmp_path, "keyturn", default) == expected


def test_the_default_access_lifetime_w004_assumes_is_simplejwts() -> None:
    """W004 takes SimpleJWT's ``ACCESS_TOKEN_LIFETIME`` default for a ``SIMPLE_JWT`` without one: the
    installed SimpleJWT's ``DEFAULTS`` say the same (read from its source, as Django is not set up here)."""
    from keyturn.django.checks import ACCESS_TOKEN_LIFETIME

    lifetime = simplejwt_defaults()["ACCESS_TOKEN_LIFETIME"]
    assert eval(ast.unparse(lifetime), {"timedelta": timedelta}) == ACCESS_TOKEN_LIFETIME  # noqa: S307
