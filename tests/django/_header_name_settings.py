"""``_other_bearer_settings`` (SimpleJWT's ``AUTH_HEADER_TYPES = ("JWT",)`` and a second class that takes
``Bearer``) with the access token read from ``X-Access-Token`` (``AUTH_HEADER_NAME``), for test_dpop.

Loaded by the example's processes (``DJANGO_SETTINGS_MODULE=_header_name_settings``, this directory on
``PYTHONPATH``), under either ``TOKENS``, never by pytest itself.
"""

from _other_bearer_settings import *  # noqa: F403
from _other_bearer_settings import SIMPLE_JWT

SIMPLE_JWT = {**SIMPLE_JWT, "AUTH_HEADER_NAME": "HTTP_X_ACCESS_TOKEN"}
