"""The example project (``examples/django_simplejwt``) on ``keyturn.django``, for the comparison.

Its own settings (``TOKENS=keyturn``: SimpleJWT's routes served by Keyturn), with Keyturn's rate limits on
but out of the load generator's reach, as for ``keyturn serve`` in the same run.
"""

from project.settings import *  # noqa: F403  # the example's settings, as they are
from project.settings import KEYTURN

KEYTURN = {
    **KEYTURN,
    **{
        f"RATE_LIMIT_{name}": "1000000/1"
        for name in ("REFRESH_PER_IP", "REFRESH_PER_SESSION", "LOGIN_PER_IP", "LOGIN_PER_USERNAME_IP")
    },
}
