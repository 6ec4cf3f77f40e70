"""The example project's settings with a ``SIMPLE_JWT`` that sets no ``ACCESS_TOKEN_LIFETIME``
(SimpleJWT's default, 5 minutes, was the project's), for test_checks.

Loaded by the example's processes (``DJANGO_SETTINGS_MODULE=_default_lifetime_settings``, this directory on
``PYTHONPATH``), never by pytest itself.
"""

from project.settings import *  # noqa: F403
from project.settings import SIMPLE_JWT

SIMPLE_JWT = {key: value for key, value in SIMPLE_JWT.items() if key != "ACCESS_TOKEN_LIFETIME"}
