"""A Django project that imports ``keyturn.django`` (its URLconfs, views, authentication, app, settings,
migrations, management command) loads neither FastAPI nor Starlette: the Django app shares only the
service's framework-neutral parts (start-up cost, and a Django project should not need the FastAPI stack).

Each module is imported in a fresh interpreter, Django set up with the example project's settings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from keyturn import django as keyturn_django

from ..e2e._resource import resource_env
from ._project import EXAMPLE, python_path

PACKAGE = Path(keyturn_django.__file__).parent
MODULES = sorted(
    ".".join(("keyturn.django", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
    for path in PACKAGE.rglob("*.py")
)
PROBE = """
import importlib, json, sys
import django
django.setup()
importlib.import_module(sys.argv[1])
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & {"fastapi", "starlette"})))
"""


def test_every_module_of_the_package_is_probed() -> None:
    """The list is read from the tree, so a new module cannot escape the check."""
    assert {"keyturn.django", "keyturn.django.urls", "keyturn.django.simplejwt_urls"} <= set(MODULES)
    assert "keyturn.django.management.commands.keyturn_clients" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_importing_a_keyturn_django_module_loads_no_fastapi_or_starlette(module: str) -> None:
    env = resource_env(
        {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "TOKENS": "keyturn",
            "PYTHONPATH": python_path(EXAMPLE),
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE, module],
        cwd=EXAMPLE,
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == [], f"{module} loads them"
