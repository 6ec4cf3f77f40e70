"""The example project's settings with the ``SIMPLE_JWT`` of a project that relied on settings Keyturn does
not read (no rotation, a serializer and a user rule of its own, a 10-minute access lifetime), for
test_checks.

Loaded by the example's processes (``DJANGO_SETTINGS_MODULE=_loose_settings``, this directory on
``PYTHONPATH``), never by pytest itself.
"""

from datetime import timedelta

from project.settings import *  # noqa: F403
from project.settings import SIMPLE_JWT

SIMPLE_JWT = {
    **SIMPLE_JWT,
    "ROTATE_REFRESH_TOKENS": False,
    "TOKEN_OBTAIN_SERIALIZER": "project.serializers.WithRolesSerializer",
    "USER_AUTHENTICATION_RULE": "project.rules.staff_only",
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=10),
}
