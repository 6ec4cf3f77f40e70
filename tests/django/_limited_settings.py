"""The example project's settings with a low per-address refresh limit, for test_switch's count of takes.

Loaded by the example's processes (``DJANGO_SETTINGS_MODULE=_limited_settings``, this directory on
``PYTHONPATH``), never by pytest itself.
"""

from project.settings import *  # noqa: F403
from project.settings import KEYTURN

KEYTURN = {**KEYTURN, "RATE_LIMIT_REFRESH_PER_IP": "2/3600"}
