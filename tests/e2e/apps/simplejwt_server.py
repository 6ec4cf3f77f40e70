"""A reference token server: DRF SimpleJWT in its recommended secure setup, as its own process.

``python -m tests.e2e.apps.simplejwt_server --port N --data-dir DIR [--access-lifetime S]
[--refresh-lifetime S] [--client-bundle PATH]``; served by werkzeug's threaded server from
``get_wsgi_application()``. The Keyturn client's tests run against it to show the client also works with a
token server that is not Keyturn.

Refresh tokens rotate on every use and the used one is blacklisted (``ROTATE_REFRESH_TOKENS`` and
``BLACKLIST_AFTER_ROTATION``, with ``rest_framework_simplejwt.token_blacklist`` installed): unlike Keyturn
there is no grace period, so a repeated refresh is refused with 401 ``token_not_valid``.

- ``POST /api/token/`` ``{username, password}``: ``{"access", "refresh"}``;
- ``POST /api/token/refresh/`` ``{refresh}``: ``{"access", "refresh"}`` (a new pair);
- ``GET /api/me/``: ``{"username"}`` for a valid ``Authorization: Bearer <access>``;
- ``GET /api/status/``: ``{"status": "ok"}``, no token needed;
- ``GET /api/stats/``: ``{"refresh_200", "refresh_401", "refresh_other"}``, how the server answered the
  refresh calls it has seen since it started;
- with ``--client-bundle PATH`` (the browser client's built ``keyturn.js``), same-origin with the API so
  that a browser needs no CORS: ``GET /client/``, a test page that puts a body-mode ``SIMPLEJWT`` session
  in ``window.session`` and counts what its ``session.fetch("/api/me/")`` calls got in ``window.results``;
  ``GET /client/keyturn.js``, the bundle, read at each request.

The SQLite database and the signing key (a 0600 file) live in ``DIR``, so a restart on the same directory
keeps users, outstanding tokens and the blacklist. The user ``SIMPLEJWT_USER`` (default ``alice``) is
created or updated at start with the password ``SIMPLEJWT_PASSWORD`` (required: tests make a random one).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import django
from django.conf import settings

from ._listening import announce

urlpatterns: list[Any] = []
"""Filled by :func:`configure` (``ROOT_URLCONF`` is this module)."""

NO_STORE = {"Cache-Control": "no-store"}

_refresh_answers: Counter[int] = Counter()
_refresh_lock = threading.Lock()


def signing_key(data_dir: Path) -> str:
    """The HMAC key for tokens, made on first start and kept in ``data_dir/signing.key`` (mode 0600)."""
    path = data_dir / "signing.key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key


def configure(
    data_dir: Path, access_lifetime: float, refresh_lifetime: float, client_bundle: Path | None = None
) -> None:
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = signing_key(data_dir)
    sqlite_options: dict[str, Any] = {"timeout": 30}  # threads wait for the write lock instead of failing
    if django.VERSION >= (5, 1):
        sqlite_options["transaction_mode"] = "IMMEDIATE"
        sqlite_options["init_command"] = "PRAGMA journal_mode=WAL;"
    settings.configure(
        DEBUG=False,
        SECRET_KEY=key,
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
                "NAME": str(data_dir / "simplejwt.sqlite3"),
                "OPTIONS": sqlite_options,
            }
        },
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        PASSWORD_HASHERS=[  # Django's recommendation: Argon2 first (argon2-cffi is a Keyturn dependency)
            "django.contrib.auth.hashers.Argon2PasswordHasher",
            "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        ],
        USE_TZ=True,
        TIME_ZONE="UTC",
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"],
            "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
            "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],  # no templates here
        },
        SIMPLE_JWT={
            "ACCESS_TOKEN_LIFETIME": timedelta(seconds=access_lifetime),
            "REFRESH_TOKEN_LIFETIME": timedelta(seconds=refresh_lifetime),
            "ROTATE_REFRESH_TOKENS": True,
            "BLACKLIST_AFTER_ROTATION": True,
            "UPDATE_LAST_LOGIN": False,
            "ALGORITHM": "HS256",
            "SIGNING_KEY": key,
            "AUTH_HEADER_TYPES": ("Bearer",),
        },
        LOGGING={
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"console": {"class": "logging.StreamHandler"}},
            "loggers": {"django": {"handlers": ["console"], "level": "ERROR"}},
        },
    )
    django.setup()
    urlpatterns[:] = _routes(client_bundle)


CLIENT_PAGE = """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>Keyturn client against SimpleJWT</title>
<p>Keyturn's browser client in body mode against SimpleJWT; the test drives it.</p>
<script type="module">
import { createSession, SIMPLEJWT } from "./keyturn.js";

const session = createSession({
  mode: "body",
  endpoints: SIMPLEJWT,
  storage: localStorage,
  refreshMargin: 300,
});
// What session.fetch("/api/me/") gave: statuses of the answers, names and reasons of the rejections.
const results = { calls: 0, statuses: {}, errors: {}, ended: [], refreshed: 0 };
const bump = (counts, key) => (counts[key] = (counts[key] || 0) + 1);
session.on("session_ended", (reason) => results.ended.push(reason));
session.on("refreshed", () => results.refreshed++);

async function call() {
  results.calls++;
  try {
    bump(results.statuses, (await session.fetch("/api/me/")).status);
  } catch (error) {
    bump(results.errors, `${error.name}: ${error.reason ?? ""}`);
  }
}

let timer;
window.session = session;
window.results = results;
window.calls = {
  start: (ms) => (clearInterval(timer), (timer = setInterval(call, ms))),
  stop: () => clearInterval(timer),
};
window.clientReady = true;
</script>
</html>
"""
"""The page at ``/client/``: ``window.session``, ``window.results``, ``window.calls.start(ms)`` and
``stop()`` (``session.fetch("/api/me/")`` every ``ms``); ``window.clientReady`` once the module has run."""


def _routes(client_bundle: Path | None = None) -> list[Any]:
    from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
    from django.urls import path
    from rest_framework.permissions import IsAuthenticated
    from rest_framework.request import Request
    from rest_framework.response import Response
    from rest_framework.views import APIView
    from rest_framework_simplejwt.authentication import JWTAuthentication
    from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

    class CountedRefresh(TokenRefreshView):
        """SimpleJWT's own refresh view, counting how it answered."""

        def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            response = super().dispatch(request, *args, **kwargs)
            with _refresh_lock:
                _refresh_answers[response.status_code] += 1
            return response

    class Me(APIView):
        authentication_classes = (JWTAuthentication,)
        permission_classes = (IsAuthenticated,)

        def get(self, request: Request) -> Response:
            return Response({"username": request.user.get_username()})

    def status(request: HttpRequest) -> HttpResponse:
        return JsonResponse({"status": "ok"})

    def stats(request: HttpRequest) -> HttpResponse:
        with _refresh_lock:
            answers = dict(_refresh_answers)
        other = sum(n for code, n in answers.items() if code not in (200, 401))
        return JsonResponse(
            {"refresh_200": answers.get(200, 0), "refresh_401": answers.get(401, 0), "refresh_other": other}
        )

    def client_page(request: HttpRequest) -> HttpResponse:
        return HttpResponse(CLIENT_PAGE, content_type="text/html; charset=utf-8", headers=NO_STORE)

    def client_script(request: HttpRequest) -> HttpResponse:
        assert client_bundle is not None
        script = client_bundle.read_bytes()
        return HttpResponse(script, content_type="text/javascript; charset=utf-8", headers=NO_STORE)

    routes = [
        path("api/token/", TokenObtainPairView.as_view()),
        path("api/token/refresh/", CountedRefresh.as_view()),
        path("api/me/", Me.as_view()),
        path("api/status/", status),
        path("api/stats/", stats),
    ]
    if client_bundle is not None:
        routes += [path("client/", client_page), path("client/keyturn.js", client_script)]
    return routes


def ensure_user(username: str, password: str) -> None:
    """Create ``username`` with ``password``, or set that password if the user exists (a restart)."""
    from django.contrib.auth.models import User

    user = User.objects.filter(username=username).first()
    if user is None:
        User.objects.create_user(username=username, password=password)
    else:
        user.set_password(password)
        user.save()


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--access-lifetime", type=float, default=300)
    parser.add_argument("--refresh-lifetime", type=float, default=86400)
    parser.add_argument("--client-bundle", type=Path, help="the browser client's keyturn.js: serve /client/")
    args = parser.parse_args()
    password = os.environ.get("SIMPLEJWT_PASSWORD")
    if not password:
        parser.error("SIMPLEJWT_PASSWORD must be set")
    if args.client_bundle is not None and not args.client_bundle.is_file():
        parser.error(f"--client-bundle: no file {args.client_bundle}")
    configure(args.data_dir, args.access_lifetime, args.refresh_lifetime, args.client_bundle)

    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application
    from werkzeug.serving import make_server

    call_command("migrate", verbosity=0)
    ensure_user(os.environ.get("SIMPLEJWT_USER", "alice"), password)

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no request lines
    server = make_server("127.0.0.1", args.port, get_wsgi_application(), threaded=True)
    announce(args.port)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
