"""Django and Django REST framework.

Settings (``settings.KEYTURN``)::

    KEYTURN = {
        "SERVICE_URL": "http://127.0.0.1:8000",   # JWKS and revocation feed over HTTP, or
        # "STORE_URL": "postgresql://...",        # both from the store the token service uses
        "ISSUER": "keyturn", "AUDIENCE": "keyturn-api",   # and any other AccessTokenVerifier option,
        "REVOCATION_POLL_INTERVAL": 1.0,                  # in capitals
        "ROUTE_PREFIX": "/auth",  # where the feed is; ignored with STORE_URL (a store has no routes)
    }

The token service's settings (``ACCESS_TOKEN_LIFETIME``, any ``KEYTURN_*`` one, ``keyturn.django``'s
``DATABASE`` and ``SIMPLEJWT_MIGRATION_UNTIL``: ``TOKEN_SERVICE_KEYS``) are ignored, so a ``KEYTURN`` dict
copied from the token service's project works (those that read like a resource server's own, such as
``DPOP_NONCES``, draw a warning, ``keyturn.W005``: :func:`token_service_settings`); any other key is a
``ConfigError`` naming it.

- ``keyturn.middleware.django.KeyturnMiddleware`` (in ``MIDDLEWARE``) checks the bearer token of every
  request that has one: a bad one is refused with Keyturn's error body (docs/contract.md), a good one is put
  in ``request.keyturn_token``. Requests without a bearer token (none, or another scheme such as Basic)
  pass (``request.keyturn_token`` is None). It is sync and async capable: under ASGI Django calls it on
  the event loop (no thread in between), where a key fetch is awaited rather than waited for.
- :func:`token_required` guards a view, sync or async.
- Django REST framework: see ``keyturn.middleware.drf``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.apps import apps
from django.conf import settings as django_settings
from django.core.checks import CheckMessage, register
from django.core.checks import Warning as CheckWarning
from django.http import HttpRequest, HttpResponse

from ..config import Settings
from ..errors import ConfigError, KeyturnError, TokenMissing
from ..http import KEYTURN_ERRORS, REALM, ErrorForm, error_response, joined_authorizations
from ..tokens import AccessClaims
from ._bearer import BearerCheck, BearerRequest, is_dpop
from ._dpop import Presented
from ._grants import require_grants
from .verifier import AccessTokenVerifier

__all__ = [
    "KeyturnMiddleware",
    "bearer_check",
    "bearer_request",
    "django_response",
    "dpop_presented",
    "get_verifier",
    "resource_options",
    "token_required",
    "token_service_settings",
]

NOT_SETTINGS = frozenset({"self", "keys", "revocations", "clock", "timer", "on_start", "on_close"})
"""``AccessTokenVerifier``'s parameters that are objects of the code (sources, clocks, callbacks), not
settings: a ``KEYTURN`` key naming one is a ``ConfigError`` like any unknown key."""
RESOURCE_KEYS = frozenset(
    {"service_url", "store_url", "route_prefix"}
    | set(inspect.signature(AccessTokenVerifier.__init__).parameters) - NOT_SETTINGS
)
"""The keys of ``settings.KEYTURN`` (in capitals) a resource server reads: where the keys and revocations
come from, and ``AccessTokenVerifier``'s options."""
TOKEN_SERVICE_KEYS = frozenset(Settings.model_fields) - RESOURCE_KEYS | {
    "database",
    "simplejwt_migration_until",
}
"""The keys only the token service reads (every ``KEYTURN_*`` setting, and ``keyturn.django``'s ``DATABASE``
and ``SIMPLEJWT_MIGRATION_UNTIL``): ignored here, so one ``KEYTURN`` dict serves both kinds of project."""
MISREAD_KEYS = {
    "dpop_nonces": "the middleware never asks for a nonce; the token service's own routes do",
    "dpop_bind_access_tokens": "whether access tokens are bound is decided where they are issued; a bound "
    "one is checked with its proof here either way",
    "secret_key": "tokens are checked with the public keys of the JWKS or the store, never a secret",
    "access_token_algorithm": "a token's algorithm must be its signing key's, from the JWKS or the store",
    "cors_origins": "a resource server answers CORS with its own middleware (django-cors-headers)",
    "trusted_proxies": "it names the proxies the token service trusts for a client's address",
}
"""Token-service keys that read like a resource server's settings, and why they do nothing here:
:func:`token_service_settings` warns of them (``keyturn.W005``)."""

logger = logging.getLogger("keyturn.middleware")
_lock = threading.Lock()
_verifier: AccessTokenVerifier | None = None


def resource_options(keyturn: object) -> dict[str, Any]:
    """``settings.KEYTURN``'s resource-server keys, lowered; the token service's dropped. A key neither
    reads (a typo) is a ``ConfigError`` naming it."""
    if not isinstance(keyturn, Mapping):
        raise ConfigError("settings.KEYTURN must be a dict")
    options: dict[str, Any] = {}
    for key, value in keyturn.items():
        name = str(key).lower()
        if name in RESOURCE_KEYS:
            options[name] = value
        elif name not in TOKEN_SERVICE_KEYS:
            raise ConfigError(
                f"settings.KEYTURN[{key!r}] is no Keyturn setting: a resource server reads "
                f"{', '.join(sorted(k.upper() for k in RESOURCE_KEYS))}, and ignores the token service's"
            )
    return options


def token_service_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A system check (``keyturn.W005``): a resource server's ``KEYTURN`` that sets token-service keys
    that look like its own settings (``MISREAD_KEYS``), which it ignores; an operator setting
    ``DPOP_NONCES`` here, say, would otherwise believe the resources ask for nonces. None in a project
    that runs the token service too (``keyturn.django`` installed), where they are read."""
    keyturn = getattr(django_settings, "KEYTURN", None)
    if not isinstance(keyturn, Mapping) or apps.is_installed("keyturn.django"):
        return []
    named = [str(key) for key in keyturn if str(key).lower() in MISREAD_KEYS]
    if not named:
        return []
    reasons = "; ".join(f"{key}: {MISREAD_KEYS[key.lower()]}" for key in named)
    return [
        CheckWarning(
            f"settings.KEYTURN sets {', '.join(named)}, which apply at the token service (keyturn serve or "
            f"keyturn.django), not at this resource server, which ignores them ({reasons}).",
            hint="Set them where the token service runs; here they can go (or silence keyturn.W005 if one "
            "KEYTURN dict serves both projects).",
            id="keyturn.W005",
        )
    ]


register(token_service_settings, "keyturn")  # for manage.py check, once this module is imported


def get_verifier() -> AccessTokenVerifier:
    """The process's verifier, built once from ``settings.KEYTURN`` (:func:`resource_options`)."""
    global _verifier  # one verifier per process, as Django has one settings module
    with _lock:
        if _verifier is None:
            options = resource_options(getattr(django_settings, "KEYTURN", {}))
            silenced = set(getattr(django_settings, "SILENCED_SYSTEM_CHECKS", ()))
            for warning in token_service_settings():  # where no system check runs (gunicorn, uvicorn)
                if warning.id not in silenced:
                    logger.warning("%s", warning)
            service, store = options.pop("service_url", None), options.pop("store_url", None)
            if bool(service) == bool(store):
                raise ConfigError("settings.KEYTURN needs exactly one of SERVICE_URL and STORE_URL")
            _verifier = (
                AccessTokenVerifier.for_service(service, **options)
                if service
                else AccessTokenVerifier.for_store(store, **options)
            )
        return _verifier


def bearer_check(
    verifier: AccessTokenVerifier | Callable[[], AccessTokenVerifier] = get_verifier,
) -> BearerCheck:
    """How Django reads a request's bearer token: a request without one, or with another scheme (Basic,
    say), passes on to other authentication."""
    return BearerCheck(verifier, required=False, other_schemes_pass=True)


def django_response(error: KeyturnError, form: ErrorForm = KEYTURN_ERRORS) -> HttpResponse:
    status, headers, body = error_response(error, REALM, form)
    response = HttpResponse(body, status=status)
    for name, value in headers:
        response[name] = value
    return response


class KeyturnMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.verifier = get_verifier()
        self.check = bearer_check(self.verifier)
        self.errors = self.verifier.errors
        # Django gives an async get_response under ASGI (when the rest of the chain allows it).
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self.__acall__(request)
        try:
            claims = self.check.verify(bearer_request(request))
            request.keyturn_token = claims  # type: ignore[attr-defined]
        except KeyturnError as error:
            return django_response(error, self.errors.presented(request.headers.get("Authorization")))
        response: HttpResponse = self.get_response(request)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        try:
            claims = await self.check.averify(bearer_request(request))
            request.keyturn_token = claims  # type: ignore[attr-defined]
        except KeyturnError as error:
            return django_response(error, self.errors.presented(request.headers.get("Authorization")))
        response: HttpResponse = await self.get_response(request)
        return response


def token_required(view: Callable[..., Any] | None = None, *, scopes: Iterable[str] = ()) -> Any:
    """Guard a Django view, sync or async: it needs a valid token (checked by the middleware) with
    ``scopes``."""
    wanted = tuple(scopes)

    def refusal(request: HttpRequest) -> HttpResponse | None:
        claims: AccessClaims | None = getattr(request, "keyturn_token", None)
        try:
            if claims is None:
                raise TokenMissing()
            require_grants(claims, wanted)
        except KeyturnError as error:
            return django_response(
                error, get_verifier().errors.presented(request.headers.get("Authorization"))
            )
        return None

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        if iscoroutinefunction(func):

            @functools.wraps(func)
            async def guarded_async(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                refused = refusal(request)
                if refused is not None:
                    return refused
                response: HttpResponse = await func(request, *args, **kwargs)
                return response

            return guarded_async

        @functools.wraps(func)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            refused = refusal(request)
            if refused is not None:
                return refused
            response: HttpResponse = func(request, *args, **kwargs)
            return response

        return guarded

    return decorate(view) if view is not None else decorate


def bearer_request(request: HttpRequest) -> BearerRequest:
    """The request's ``Authorization``, and with a DPoP token its method, URL (without query) and
    ``DPoP`` header."""
    authorization = request.headers.get("Authorization")
    repeated = joined_authorizations(authorization)  # WSGI servers join repeated headers with commas
    if not is_dpop(authorization):
        return BearerRequest(authorization, repeated=repeated)
    dpop = dpop_presented(request)
    return BearerRequest(authorization, "", dpop.method, dpop.url, dpop.proofs, repeated)


def dpop_presented(request: HttpRequest) -> Presented:
    """How ``request`` presents a token in the ``DPoP`` scheme: its method, its URL without the query
    (RFC 9449 section 4.3: ``htu``) and its ``DPoP`` proof, as every Django adapter reads them."""
    proof = request.headers.get("DPoP")
    url = request.build_absolute_uri(request.path)
    return Presented("dpop", request.method or "", url, (proof,) if proof else ())
