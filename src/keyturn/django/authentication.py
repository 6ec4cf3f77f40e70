"""Access tokens to Django users, for ``keyturn.middleware.drf.KeyturnAuthentication``.

With ``keyturn.django`` installed, ``KeyturnAuthentication`` calls :func:`authenticate_request`: the token is
checked offline (keys and revocations from the project's own store, as any resource server checks it) and
``request.user`` is the Django user whose primary key is the token's subject. A user who is gone or
inactive is refused (``token_revoked``) even before the revocation of their sessions reaches the check.
While ``SIMPLEJWT_MIGRATION_UNTIL`` lasts, SimpleJWT access tokens issued before the switch pass too.

As a drop-in for SimpleJWT's ``JWTAuthentication``, the token is read from the header SimpleJWT read it
from (``SIMPLE_JWT["AUTH_HEADER_NAME"]``) under any of its schemes (``AUTH_HEADER_TYPES``, ``Bearer``
always), and a refusal keeps SimpleJWT's body (``{"detail", "code": "token_not_valid", "messages"}``) with
Keyturn's beside it (:func:`refusal_body`), so a frontend that refreshes on ``token_not_valid`` still does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings

from ..errors import KeyturnError, SessionError, TokenError, TokenInvalid, TokenRevoked
from ..http import bearer_token_if_any, error_body, one_joined_authorization
from ..tokens import AccessClaims
from .service import service
from .users import find_user, is_active

__all__ = ["authenticate_request", "authenticate_token", "refusal_body"]

NOT_VALID = "Given token not valid for any token type"
MESSAGES = {
    "token_expired": "Token is expired",
    "token_revoked": "Token is blacklisted",
    "session_revoked": "Token is blacklisted",
}
"""SimpleJWT's message for each of Keyturn's codes (``Token is invalid`` otherwise)."""


def _simple_jwt() -> Mapping[str, Any]:
    found = getattr(settings, "SIMPLE_JWT", None)
    return found if isinstance(found, Mapping) else {}


def _header_types() -> tuple[str, ...]:
    """SimpleJWT's ``AUTH_HEADER_TYPES`` (one string or several), ``("Bearer",)`` by default."""
    types = _simple_jwt().get("AUTH_HEADER_TYPES", ("Bearer",))
    return (types,) if isinstance(types, str) else tuple(str(t) for t in types)


def token_of(authorization: str | None) -> str | None:
    """The token of ``Authorization`` under ``Bearer`` or a scheme of ``AUTH_HEADER_TYPES`` (compared as
    SimpleJWT compares them, exactly); None for no header or another scheme."""
    authorization = one_joined_authorization(authorization)
    if authorization is not None:
        scheme, _, rest = authorization.strip().partition(" ")
        if scheme in _header_types() and scheme.lower() != "bearer":
            authorization = f"Bearer {rest}"
    return bearer_token_if_any(authorization)


def authenticate_request(meta: Mapping[str, Any]) -> tuple[Any, AccessClaims] | None:
    """The user and claims of the request whose WSGI environ is ``meta``; None when it carries no token."""
    header = meta.get(str(_simple_jwt().get("AUTH_HEADER_NAME", "HTTP_AUTHORIZATION")))
    token = token_of(header if isinstance(header, str) else None)
    return None if token is None else authenticate_token(token)


def authenticate_token(token: str) -> tuple[Any, AccessClaims]:
    """The Django user and the claims of a valid access token; a ``KeyturnError`` otherwise."""
    svc = service()
    try:
        claims = svc.verifier().verify(token)
    except TokenInvalid:
        if svc.config.migration_until is None:
            raise
        from .legacy import verify_access  # SimpleJWT's tokens, only while the migration lasts

        claims = verify_access(token, svc.config.migration_until)
    user = find_user(claims.sub)
    if user is None or not is_active(user):
        raise TokenRevoked("The token's user is gone or inactive.")
    return user, claims


def refusal_body(error: KeyturnError) -> dict[str, object]:
    """Keyturn's error body with SimpleJWT's ``JWTAuthentication`` body in front of it."""
    if isinstance(error, TokenError | SessionError):
        message = MESSAGES.get(error.code, "Token is invalid")
        front: dict[str, object] = {
            "detail": NOT_VALID,
            "code": "token_not_valid",
            "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
        }
    else:
        front = {"detail": error.detail, "code": error.code}
    return {**front, **error_body(error)}
