"""The SimpleJWT side of the comparison: Django, DRF and djangorestframework-simplejwt, set up securely.

It runs in its own virtual environment (``bench/compare/.venv``, see ``_venv.py``), never in Keyturn's:

    SIMPLEJWT_BENCH_DIR=DIR python simplejwt_app.py setup USER < password-file   # migrate, add the user
    SIMPLEJWT_BENCH_DIR=DIR python simplejwt_app.py mint USER COUNT              # COUNT token pairs
    SIMPLEJWT_BENCH_DIR=DIR gunicorn --workers 2 --worker-class sync 'simplejwt_app:wsgi()'

The setup SimpleJWT's documentation recommends for refresh-token rotation: ``ROTATE_REFRESH_TOKENS`` and
``BLACKLIST_AFTER_ROTATION`` on, ``rest_framework_simplejwt.token_blacklist`` installed and migrated;
every other SimpleJWT setting at its default (HS256 with the Django secret key, 5-minute access tokens,
1-day refresh tokens). Django: SQLite with the settings Keyturn's own SQLite store uses (WAL,
``synchronous=NORMAL``, write transactions ``BEGIN IMMEDIATE``, a 5 s busy timeout), persistent database
connections (``CONN_MAX_AGE=None``) and Argon2 password hashing, as Django's documentation recommends.

- ``POST /api/token/`` ``{username, password}``: ``{"access", "refresh"}``;
- ``POST /api/token/refresh/`` ``{refresh}``: ``{"access", "refresh"}``;
- ``GET /api/me/``: a DRF view behind ``JWTAuthentication`` and ``IsAuthenticated``: ``{"username"}``;
- ``GET /api/status/``: ``{"status": "ok"}``, no token: the benchmark's readiness check.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Any

import django
from django.conf import settings

urlpatterns: list[Any] = []
"""Filled by :func:`configure` (``ROOT_URLCONF`` is this module)."""


def secret_key(data_dir: Path) -> str:
    """Django's secret key (SimpleJWT's signing key), made on first use, kept in a 0600 file."""
    path = data_dir / "secret.key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key


def configure(data_dir: Path) -> None:
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings.configure(
        DEBUG=False,
        SECRET_KEY=secret_key(data_dir),
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "rest_framework",
            "rest_framework_simplejwt",
            "rest_framework_simplejwt.token_blacklist",
        ],
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.middleware.common.CommonMiddleware",
        ],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(data_dir / "db.sqlite3"),
                "CONN_MAX_AGE": None,
                "OPTIONS": {
                    "timeout": 5,
                    "transaction_mode": "IMMEDIATE",
                    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                },
            }
        },
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.Argon2PasswordHasher"],
        USE_TZ=True,
        TIME_ZONE="UTC",
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"],
            "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
            "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        },
        SIMPLE_JWT={
            "ROTATE_REFRESH_TOKENS": True,
            "BLACKLIST_AFTER_ROTATION": True,
            "AUTH_HEADER_TYPES": ("Bearer",),
        },
    )
    django.setup()
    urlpatterns[:] = _routes()


def _routes() -> list[Any]:
    from django.http import HttpRequest, HttpResponse, JsonResponse
    from django.urls import path
    from rest_framework.permissions import IsAuthenticated
    from rest_framework.request import Request
    from rest_framework.response import Response
    from rest_framework.views import APIView
    from rest_framework_simplejwt.authentication import JWTAuthentication
    from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

    class Me(APIView):
        authentication_classes = (JWTAuthentication,)
        permission_classes = (IsAuthenticated,)

        def get(self, request: Request) -> Response:
            return Response({"username": request.user.get_username()})

    def status(request: HttpRequest) -> HttpResponse:
        return JsonResponse({"status": "ok"})

    return [
        path("api/token/", TokenObtainPairView.as_view()),
        path("api/token/refresh/", TokenRefreshView.as_view()),
        path("api/me/", Me.as_view()),
        path("api/status/", status),
    ]


def mint(username: str, count: int) -> None:
    """Print ``count`` new token pairs of ``username``, one JSON line each: what ``/api/token/`` does once
    the password has been checked (``RefreshToken.for_user``, which records the outstanding token)."""
    import json

    from django.contrib.auth.models import User
    from rest_framework_simplejwt.tokens import RefreshToken

    user = User.objects.get(username=username)
    for _ in range(count):
        refresh = RefreshToken.for_user(user)
        print(json.dumps({"refresh": str(refresh), "access": str(refresh.access_token)}))


def setup(username: str, password: str) -> None:
    """Migrate (the blacklist app's tables too) and create ``username`` or reset its password."""
    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    user = User.objects.filter(username=username).first()
    if user is None:
        User.objects.create_user(username=username, password=password)
    else:
        user.set_password(password)
        user.save()


def _data_dir() -> Path:
    value = os.environ.get("SIMPLEJWT_BENCH_DIR")
    if not value:
        raise SystemExit("set SIMPLEJWT_BENCH_DIR to the directory of the SQLite file and the secret key")
    return Path(value)


def wsgi() -> Any:
    """The WSGI application, for ``gunicorn 'simplejwt_app:wsgi()'`` (configured when a worker loads it)."""
    configure(_data_dir())
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "setup":
        configure(_data_dir())
        setup(sys.argv[2], sys.stdin.readline().strip())
    elif len(sys.argv) == 4 and sys.argv[1] == "mint":
        configure(_data_dir())
        mint(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit("usage: python simplejwt_app.py setup USER < password | mint USER COUNT")


if __name__ == "__main__":
    main()
