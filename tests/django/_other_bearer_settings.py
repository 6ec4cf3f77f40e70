"""The example project's settings with SimpleJWT's ``AUTH_HEADER_TYPES = ("JWT",)`` and a second
authentication class after the token service's that takes ``Bearer`` tokens (``_other_bearer``), as a
project that also runs django-oauth-toolkit sets it up, for test_simplejwt_compat.

Loaded by the example's processes (``DJANGO_SETTINGS_MODULE=_other_bearer_settings``, this directory on
``PYTHONPATH``), under either ``TOKENS``, never by pytest itself.
"""

from project.settings import *  # noqa: F403
from project.settings import REST_FRAMEWORK, SIMPLE_JWT

SIMPLE_JWT = {**SIMPLE_JWT, "AUTH_HEADER_TYPES": ("JWT",)}
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_AUTHENTICATION_CLASSES": [
        *REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"],
        "_other_bearer.OtherBearer",
    ],
}
