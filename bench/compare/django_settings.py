"""The example project (``examples/django_simplejwt``) on ``keyturn.django``, for the comparison.

Its own settings (``TOKENS=keyturn``: SimpleJWT's routes served by Keyturn), put on the footing of
``simplejwt_app.py`` so that the two differ in the token service alone: the same SQLite settings (WAL,
``synchronous=NORMAL``, ``BEGIN IMMEDIATE``, a 5 s busy timeout, persistent connections), the same two
middleware and DRF's JSON renderer only; Keyturn's rate limits on but out of the load generator's reach, as
for ``keyturn serve`` in the same run.
"""

from project.settings import *  # noqa: F403  # the example's settings, then the comparison's footing
from project.settings import DATABASES, KEYTURN, REST_FRAMEWORK

DATABASES["default"]["CONN_MAX_AGE"] = None
DATABASES["default"]["OPTIONS"] = {
    "timeout": 5,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
KEYTURN = {
    **KEYTURN,
    **{
        f"RATE_LIMIT_{name}": "1000000/1"
        for name in ("REFRESH_PER_IP", "REFRESH_PER_SESSION", "LOGIN_PER_IP", "LOGIN_PER_USERNAME_IP")
    },
}
