"""The example project's settings with SimpleJWT's ``AUTH_HEADER_TYPES = ("Bearer", "JWT")``, a common
setup (frontends then send ``Authorization: JWT <token>``), for test_simplejwt_compat.

Loaded by the example's processes (``DJANGO_SETTINGS_MODULE=_header_types_settings``, this directory on
``PYTHONPATH``), under either ``TOKENS``, never by pytest itself.
"""

from project.settings import *  # noqa: F403
from project.settings import SIMPLE_JWT

SIMPLE_JWT = {**SIMPLE_JWT, "AUTH_HEADER_TYPES": ("Bearer", "JWT")}
