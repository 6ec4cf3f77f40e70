"""A small Django + DRF project set up as djangorestframework-simplejwt's documentation sets it up.

``TOKENS`` (an environment variable) switches the token service: ``simplejwt`` (the default, SimpleJWT's
own views) or ``keyturn`` (``keyturn.django``, with SimpleJWT's routes served by Keyturn and the tokens
issued before the switch still accepted). Everything else, SimpleJWT's settings included, stays as it is.

``DATABASE`` is ``sqlite:////path/to/db.sqlite3`` (the default: ``db.sqlite3`` here) or
``postgresql://host:port/name[?schema=NAME]``.
"""

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
TOKENS = os.environ.get("TOKENS", "simplejwt")

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-example-only-change-me")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def _database(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": parts.path[1:] if parts.path.startswith("//") else parts.path.lstrip("/"),
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL;",
            },
        }
    schema = parse_qs(parts.query).get("schema", [""])[0]
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": parts.username or "",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "OPTIONS": {"options": f"-c search_path={schema}"} if schema else {},
    }


DATABASES = {"default": _database(os.environ.get("DATABASE", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))}

AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = []
if os.environ.get("FAST_PASSWORD_HASHER") == "1":  # the tests' many users: a cheap hash, never in production
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The project's own backend (email or username) beside Django's: login goes through authenticate().
AUTHENTICATION_BACKENDS = ["api.backends.EmailBackend", "django.contrib.auth.backends.ModelBackend"]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

# -- djangorestframework-simplejwt, as its documentation sets it up ---------------------------------

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=int(os.environ.get("ACCESS_LIFETIME", "300"))),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=int(os.environ.get("REFRESH_LIFETIME", "86400"))),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "SIGNING_KEY": os.environ.get("SIMPLEJWT_SIGNING_KEY", SECRET_KEY),
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}

# -- the switch ------------------------------------------------------------------------------------

if TOKENS == "keyturn":
    INSTALLED_APPS += ["keyturn.django"]
    REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"] = ["keyturn.middleware.drf.KeyturnAuthentication"]
    KEYTURN = {
        "ACCESS_TOKEN_LIFETIME": int(os.environ.get("ACCESS_LIFETIME", "300")),
        # Accept the SimpleJWT tokens issued before the switch until the longest of them has expired.
        "SIMPLEJWT_MIGRATION_UNTIL": os.environ.get("SIMPLEJWT_MIGRATION_UNTIL", "2099-01-01"),
        "GRACE_PERIOD": int(os.environ.get("GRACE_PERIOD", "30")),
        "LEEWAY": int(os.environ.get("LEEWAY", "30")),
        "ISSUER": os.environ.get("ISSUER", "keyturn"),  # the service's public URL, for OAuth clients
        "DPOP": os.environ.get("DPOP", "optional"),  # off: no session is bound, no DPoP challenge
        "DPOP_NONCES": os.environ.get("DPOP_NONCES", "off") == "on",
        "DPOP_BIND_ACCESS_TOKENS": os.environ.get("DPOP_BIND_ACCESS_TOKENS", "off") == "on",
        "RATE_LIMITS": os.environ.get("RATE_LIMITS", "on") != "off",
        "COOKIE_HOST_PREFIX": os.environ.get("COOKIE_HOST_PREFIX", "off") == "on",
    }
elif TOKENS != "simplejwt":
    raise ValueError(f"TOKENS must be simplejwt or keyturn, not {TOKENS!r}")
