"""Keyturn inside a Django project: the token service as a Django app, on the project's users and database.

::

    INSTALLED_APPS += ["keyturn.django"]
    urlpatterns += [path("api/auth/", include("keyturn.django.urls"))]
    KEYTURN = {"ACCESS_TOKEN_LIFETIME": 300}        # any KEYTURN_* setting, without the prefix

``python manage.py migrate`` makes Keyturn's tables in the default database (PostgreSQL or SQLite). Login
goes through ``django.contrib.auth.authenticate()``; a session's subject is the user's primary key.
Projects that authenticate users themselves (social login, SSO, magic links) start a session with
:func:`start_session` (or :func:`astart_session` in an async view). ``keyturn.django.simplejwt_urls``
serves djangorestframework-simplejwt's routes and bodies; ``keyturn.django.oauth_urls`` and
``keyturn.django.oauth_views.server_metadata`` the OAuth 2.0 surface (``manage.py keyturn_clients``
registers its clients). See ``docs/django.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

    from ..typing import JSONValue

__all__ = ["astart_session", "start_session"]


def start_session(
    request: HttpRequest,
    user: Any,
    claims: Mapping[str, JSONValue] | None = None,
    *,
    client_id: str | None = None,
) -> HttpResponse:
    """Start a Keyturn session for ``user``, whom the project has authenticated, and answer with the
    token response of ``POST …/login`` (cookie mode as the request asks, ``Cache-Control: no-store``).

    ``claims`` go into every access token of the session; ``client_id`` names the OAuth 2.0 client it
    is for (``docs/oauth.md``; the built-in ``keyturn`` without one). For sync views;
    :func:`astart_session` in async ones.
    """
    from ._flow import run_sync
    from .service import service
    from .views import guarded, start_flow

    return run_sync(guarded(start_flow(request, user, claims, client_id=client_id)), service().call)


async def astart_session(
    request: HttpRequest,
    user: Any,
    claims: Mapping[str, JSONValue] | None = None,
    *,
    client_id: str | None = None,
) -> HttpResponse:
    """:func:`start_session` for async views: the event loop is not blocked."""
    from ._flow import run_async
    from .service import service
    from .views import guarded, start_flow

    return await run_async(guarded(start_flow(request, user, claims, client_id=client_id)), service().acall)
