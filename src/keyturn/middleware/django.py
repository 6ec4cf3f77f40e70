"""Django and Django REST framework.

Settings (``settings.KEYTURN``)::

    KEYTURN = {
        "SERVICE_URL": "http://127.0.0.1:8000",   # JWKS and revocation feed over HTTP, or
        # "STORE_URL": "postgresql://...",        # both from the store the token service uses
        "ISSUER": "keyturn", "AUDIENCE": "keyturn-api",   # and any other AccessTokenVerifier option,
        "REVOCATION_POLL_INTERVAL": 1.0,                  # in capitals
    }

- ``keyturn.middleware.django.KeyturnMiddleware`` (in ``MIDDLEWARE``) checks the bearer token of every
  request that has one: a bad one is refused with the error body of DESIGN section 3, a good one is put
  in ``request.keyturn_token``. Requests without a bearer token (none, or another scheme such as Basic)
  pass (``request.keyturn_token`` is None);
  :func:`token_required` guards a view.
- Django REST framework: see ``keyturn.middleware.drf``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings as django_settings
from django.http import HttpRequest, HttpResponse

from ..errors import KeyturnError, TokenInvalid
from ..http import REALM, bearer_token_if_any, error_response
from ..tokens import AccessClaims
from ._grants import require_grants
from .verifier import AccessTokenVerifier

__all__ = [
    "KeyturnMiddleware",
    "django_response",
    "get_verifier",
    "token_required",
]

_lock = threading.Lock()
_verifier: AccessTokenVerifier | None = None


def get_verifier() -> AccessTokenVerifier:
    """The process's verifier, built once from ``settings.KEYTURN``."""
    global _verifier  # one verifier per process, as Django has one settings module
    with _lock:
        if _verifier is None:
            options = {k.lower(): v for k, v in getattr(django_settings, "KEYTURN", {}).items()}
            service, store = options.pop("service_url", None), options.pop("store_url", None)
            if bool(service) == bool(store):
                raise ValueError("settings.KEYTURN needs exactly one of SERVICE_URL and STORE_URL")
            _verifier = (
                AccessTokenVerifier.for_service(service, **options)
                if service
                else AccessTokenVerifier.for_store(store, **options)
            )
        return _verifier


def django_response(error: KeyturnError) -> HttpResponse:
    status, headers, body = error_response(error, REALM)
    response = HttpResponse(body, status=status)
    for name, value in headers:
        response[name] = value
    return response


class KeyturnMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.verifier = get_verifier()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            token = bearer_token_if_any(request.headers.get("Authorization"))
            request.keyturn_token = None if token is None else self.verifier.verify(token)  # type: ignore[attr-defined]
        except KeyturnError as error:
            return django_response(error)
        return self.get_response(request)


def token_required(view: Callable[..., HttpResponse] | None = None, *, scopes: Iterable[str] = ()) -> Any:
    """Guard a Django view: it needs a valid token (checked by the middleware) with ``scopes``."""
    wanted = tuple(scopes)

    def decorate(func: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(func)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            claims: AccessClaims | None = getattr(request, "keyturn_token", None)
            try:
                if claims is None:
                    raise TokenInvalid("No access token was given.")
                require_grants(claims, wanted)
            except KeyturnError as error:
                return django_response(error)
            return func(request, *args, **kwargs)

        return guarded

    return decorate(view) if view is not None else decorate
