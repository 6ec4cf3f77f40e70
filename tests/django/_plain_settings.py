"""The example project's settings as docs/django.md's plain setup has them: ``keyturn.django`` in a
project that never used SimpleJWT (no ``SIMPLE_JWT``, none of its apps), for test_checks.

Loaded by the example's processes (``DJANGO_SETTINGS_MODULE=_plain_settings``, this directory on
``PYTHONPATH``), never by pytest itself.
"""

from project.settings import *  # noqa: F403
from project.settings import INSTALLED_APPS, KEYTURN

INSTALLED_APPS = [app for app in INSTALLED_APPS if not app.startswith("rest_framework_simplejwt")]
KEYTURN = {key: value for key, value in KEYTURN.items() if key != "SIMPLEJWT_MIGRATION_UNTIL"}
del SIMPLE_JWT  # noqa: F821  # from project.settings
