"""A single-file Django project (plain views and Django REST framework) behind Keyturn, as its own process.

``python -m tests.e2e.apps.django_resource --service URL --port N [--without-middleware] [--asgi]``;
served by werkzeug's threaded server from ``get_wsgi_application()``, or with ``--asgi`` by uvicorn from
``get_asgi_application()`` (the middleware then runs async, on the event loop). Settings are made in
code; the verifier's ``LEEWAY`` and ``REVOCATION_POLL_INTERVAL`` come from the ``KEYTURN_*`` environment
into ``settings.KEYTURN``.

- ``GET /plain/whoami``: a Django view guarded by ``token_required``;
- ``GET /plain/orders``: the same with ``token_required(scopes=["orders:read"])``;
- ``GET /drf/whoami``: a DRF ``APIView`` with ``KeyturnAuthentication`` and ``IsAuthenticated``;
- ``GET /drf/orders``: a DRF ``APIView`` with ``HasScopes`` and ``required_scopes = ["orders:read"]``,
  authenticated by ``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]``;
- ``GET /async/whoami`` and ``GET /async/orders``: the same as the plain views, as async views;
- ``GET /status``: the verifier's status, a plain view that needs no token.

With ``--without-middleware`` ``keyturn.middleware.django.KeyturnMiddleware`` is left out of
``MIDDLEWARE``, so the DRF views are guarded by ``KeyturnAuthentication`` alone (and the ``token_required``
views, which rely on the middleware, refuse every request).
"""

from __future__ import annotations

import argparse
import logging
import secrets
import signal
from types import FrameType
from typing import Any, ClassVar

import django
from django.conf import settings

from ._listening import announce, serve_uvicorn

urlpatterns: list[Any] = []
"""Filled by :func:`configure` (``ROOT_URLCONF`` is this module)."""


def configure(service_url: str, *, middleware: bool = True) -> None:
    from keyturn.config import Settings

    keyturn = Settings()  # the KEYTURN_* environment
    settings.configure(
        DEBUG=False,
        SECRET_KEY=secrets.token_urlsafe(32),
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"],
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.middleware.common.CommonMiddleware",
            *(["keyturn.middleware.django.KeyturnMiddleware"] if middleware else []),
        ],
        DATABASES={},
        USE_TZ=True,
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": ["keyturn.middleware.drf.KeyturnAuthentication"],
            "EXCEPTION_HANDLER": "keyturn.middleware.drf.exception_handler",
            "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],  # no templates here
        },
        KEYTURN={
            "SERVICE_URL": service_url,
            "LEEWAY": keyturn.leeway,
            "REVOCATION_POLL_INTERVAL": keyturn.revocation_poll_interval,
        },
        LOGGING={
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"console": {"class": "logging.StreamHandler"}},
            "loggers": {"django": {"handlers": ["console"], "level": "ERROR"}},
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

    from keyturn.middleware import AccessClaims
    from keyturn.middleware.django import get_verifier, token_required
    from keyturn.middleware.drf import HasScopes, KeyturnAuthentication

    def claims_json(token: AccessClaims) -> dict[str, Any]:
        return {"sub": token.sub, "sid": token.sid, "jti": token.jti, "kid": token.kid}

    @token_required
    def plain_whoami(request: HttpRequest) -> HttpResponse:
        return JsonResponse(claims_json(request.keyturn_token))  # type: ignore[attr-defined]

    @token_required(scopes=["orders:read"])
    def plain_orders(request: HttpRequest) -> HttpResponse:
        return JsonResponse({"orders": [], "for": request.keyturn_token.sub})  # type: ignore[attr-defined]

    @token_required
    async def async_whoami(request: HttpRequest) -> HttpResponse:
        return JsonResponse(claims_json(request.keyturn_token))  # type: ignore[attr-defined]

    @token_required(scopes=["orders:read"])
    async def async_orders(request: HttpRequest) -> HttpResponse:
        return JsonResponse({"orders": [], "for": request.keyturn_token.sub})  # type: ignore[attr-defined]

    def status(request: HttpRequest) -> HttpResponse:
        return JsonResponse(get_verifier().status())

    class DrfWhoAmI(APIView):
        authentication_classes = (KeyturnAuthentication,)
        permission_classes = (IsAuthenticated,)

        def get(self, request: Request) -> Response:
            return Response({**claims_json(request.auth), "user": request.user.username})

    class DrfOrders(APIView):
        permission_classes = (HasScopes,)
        required_scopes: ClassVar[list[str]] = ["orders:read"]

        def get(self, request: Request) -> Response:
            return Response({"orders": [], "for": request.user.username})

    return [
        path("status", status),
        path("plain/whoami", plain_whoami),
        path("plain/orders", plain_orders),
        path("async/whoami", async_whoami),
        path("async/orders", async_orders),
        path("drf/whoami", DrfWhoAmI.as_view()),
        path("drf/orders", DrfOrders.as_view()),
    ]


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--without-middleware", action="store_true")
    parser.add_argument("--asgi", action="store_true")
    args = parser.parse_args()
    configure(args.service, middleware=not args.without_middleware)
    if args.asgi:
        serve_asgi(args.port)
        return

    from django.core.wsgi import get_wsgi_application
    from werkzeug.serving import make_server

    from keyturn.middleware.django import get_verifier

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no request lines
    server = make_server("127.0.0.1", args.port, get_wsgi_application(), threaded=True)
    announce(args.port)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        get_verifier().close()


def serve_asgi(port: int) -> None:
    from django.core.asgi import get_asgi_application

    from keyturn.middleware.django import get_verifier

    try:
        serve_uvicorn(get_asgi_application(), port, log_level="warning", lifespan="off")
    finally:
        get_verifier().close()


if __name__ == "__main__":
    main()
