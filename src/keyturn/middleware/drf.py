"""Django REST framework: an authentication class and a scope permission.

::

    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": ["keyturn.middleware.drf.KeyturnAuthentication"],
        "EXCEPTION_HANDLER": "keyturn.middleware.drf.exception_handler",
    }

with ``settings.KEYTURN`` as for ``keyturn.middleware.django``. ``request.user`` is a :class:`KeyturnUser`
(the token's subject; Keyturn's users are not Django's) and ``request.auth`` the verified claims. When the
token service runs in the project itself (the ``keyturn.django`` app is installed), ``request.user`` is the
Django user whose primary key is the token's subject (``keyturn.django.authentication``).
Refusals answer with Keyturn's error body (docs/contract.md), ``Cache-Control: no-store`` and, on 401 and 403,
``WWW-Authenticate``. The exception handler is what makes DRF's own "no credentials" refusal (from
``IsAuthenticated`` and the like) answer ``token_invalid`` too; every other exception goes to DRF's.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.apps import apps
from rest_framework import exceptions, views
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from ..errors import KeyturnError, TokenMissing
from ..http import REALM, ErrorForm, error_body
from ..tokens import AccessClaims
from ._grants import require_grants
from .django import bearer_check, bearer_request, get_verifier

__all__ = ["HasScopes", "KeyturnAuthentication", "KeyturnUser", "exception_handler"]

_bearer = bearer_check()  # the process's verifier, built at the first token


class KeyturnUser:
    """``request.user`` for a request with a valid token: the token's subject, not a Django user."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, token: AccessClaims) -> None:
        self.token = token
        self.id = self.pk = self.username = token.sub

    def __str__(self) -> str:
        return f"KeyturnUser {self.username}"


class _Refused(exceptions.AuthenticationFailed):
    def __init__(self, error: KeyturnError, body: dict[str, object] | None = None) -> None:
        super().__init__(code=error.code)
        self.status_code = error.status
        self.detail = body or error_body(error)  # type: ignore[assignment]  # rendered as it is
        self.error = error


class _Forbidden(exceptions.PermissionDenied):
    def __init__(self, error: KeyturnError, form: ErrorForm) -> None:
        super().__init__(code=error.code)
        self.detail = error_body(error)  # type: ignore[assignment]
        self.error = error
        self.auth_header = form.headers(error, REALM)["WWW-Authenticate"]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, with Keyturn's answer for refused tokens and for requests without one."""
    if isinstance(exc, exceptions.NotAuthenticated):
        exc = _Refused(TokenMissing())
    response = views.exception_handler(exc, context)
    if response is not None and isinstance(exc, _Refused | _Forbidden):
        for name, value in _errors(context["request"]).headers(exc.error, REALM).items():
            response[name] = value
    return response


_PROJECT = "keyturn.django.authentication"


def _in_project() -> bool:
    """Whether ``keyturn.django`` (the token service as a Django app) is installed in this project."""
    return apps.is_installed("keyturn.django")


def _errors(request: Request) -> ErrorForm:
    """How ``request``'s refusals are answered: challenging ``DPoP`` too while DPoP is on, in a project
    running the token service as at a resource server elsewhere: both take ``DPoP <token>`` with its
    proof, and a token presented as ``DPoP`` is challenged in that scheme alone. In the project
    (``keyturn.django.authentication.refusal_form``) the bearer side is challenged in the first of
    SimpleJWT's ``AUTH_HEADER_TYPES``, and the scheme is the one its token was read in; elsewhere
    (the verifier's ``errors``, ``keyturn.middleware.django.get_verifier``) it is ``Bearer``."""
    if _in_project():
        form: ErrorForm = import_module(_PROJECT).refusal_form(request._request)
        return form
    return get_verifier().errors.presented(request._request.headers.get("Authorization"))


def _project_user(request: Request) -> tuple[Any, AccessClaims] | None:
    """The Django user and claims of the request's access token (``keyturn.django.authentication``:
    SimpleJWT's header and schemes or ``DPoP``, and SimpleJWT's refusal body beside Keyturn's)."""
    project = import_module(_PROJECT)
    try:
        found: tuple[Any, AccessClaims] | None = project.authenticate_request(request._request)
    except KeyturnError as error:
        request._request.keyturn_error = error  # type: ignore[attr-defined]
        raise _Refused(error, project.refusal_body(error)) from error
    return found


class KeyturnAuthentication(BaseAuthentication):
    """``Authorization: Bearer <access token>`` or ``DPoP <access token>`` with its proof; reuses the token
    ``KeyturnMiddleware`` verified."""

    def authenticate(self, request: Request) -> tuple[Any, AccessClaims] | None:
        if _in_project():  # the token service runs in this project: request.user is a Django user
            return _project_user(request)
        claims: AccessClaims | None = getattr(request._request, "keyturn_token", None)
        if claims is None:
            try:
                claims = _bearer.verify(bearer_request(request._request))
            except KeyturnError as error:
                request._request.keyturn_error = error  # type: ignore[attr-defined]
                raise _Refused(error) from error
            if claims is None:
                return None
        return KeyturnUser(claims), claims

    def authenticate_header(self, request: Request) -> str:
        error: KeyturnError = getattr(request._request, "keyturn_error", None) or TokenMissing()
        form = _errors(request)
        return form.headers(error, REALM).get("WWW-Authenticate") or f'{form.bearer_scheme} realm="{REALM}"'


class HasScopes(BasePermission):
    """The token carries every scope in the view's ``required_scopes`` (else 403 ``insufficient_scope``)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        claims = request.auth
        if not isinstance(claims, AccessClaims):
            raise _Refused(TokenMissing())
        try:
            require_grants(claims, getattr(view, "required_scopes", ()))
        except KeyturnError as error:
            raise _Forbidden(error, _errors(request)) from error
        return True
