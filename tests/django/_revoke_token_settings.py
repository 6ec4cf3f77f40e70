"""The example project's settings with SimpleJWT's ``CHECK_REVOKE_TOKEN`` on (access tokens carry a hash
of the user's password and are refused once it changes), for test_simplejwt_compat.

Loaded by the example's processes (``DJANGO_SETTINGS_MODULE=_revoke_token_settings``, this directory on
``PYTHONPATH``), under either ``TOKENS``, never by pytest itself.
"""

from project.settings import *  # noqa: F403
from project.settings import SIMPLE_JWT

SIMPLE_JWT = {**SIMPLE_JWT, "CHECK_REVOKE_TOKEN": True}
