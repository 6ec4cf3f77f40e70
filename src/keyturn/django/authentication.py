"""Access tokens to Django users, for ``keyturn.middleware.drf.KeyturnAuthentication``.

With ``keyturn.django`` installed, ``KeyturnAuthentication`` calls :func:`authenticate_request`: the token is
checked offline (keys and revocations from the project's own store, as any resource server checks it) and
``request.user`` is the Django user whose primary key is the token's subject. A user who is gone or
inactive is refused (``token_revoked``) even before the revocation of their sessions reaches the check.
While ``SIMPLEJWT_MIGRATION_UNTIL`` lasts, SimpleJWT access tokens issued before the switch pass too.

As a drop-in for SimpleJWT's ``JWTAuthentication``, the token is read as that read it
(:func:`presented_token`): from ``SIMPLE_JWT["AUTH_HEADER_NAME"]``, under the schemes of
``AUTH_HEADER_TYPES`` alone (``("Bearer",)`` by default); a header in another scheme is left to the next
authentication class. ``DPoP <token>`` with its ``DPoP`` proof is taken too, as every adapter takes it
(RFC 9449 section 7). A refusal keeps SimpleJWT's body (``{"detail", "code": "token_not_valid",
"messages"}``) with Keyturn's beside it (:func:`refusal_body`), so a frontend that refreshes on
``token_not_valid`` still does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from ..errors import KeyturnError, SessionError, TokenError, TokenInvalid, TokenRevoked
from ..http import KEYTURN_ERRORS, ErrorForm, error_body, one_joined_authorization
from ..middleware._dpop import BEARER, Presented
from ..oauth import dpop_signing_algs
from ..tokens import AccessClaims
from .service import ProjectService, service
from .simplejwt import WrongTokenType, of_other_type, token_message
from .users import find_user, is_active

__all__ = [
    "BadAuthorizationHeader",
    "authenticate_request",
    "authenticate_token",
    "presented_token",
    "refusal_body",
    "refusal_form",
]

NOT_VALID = "Given token not valid for any token type"
_SPACES = re.compile(r"[ \t\n\r\x0b\x0c]+")
"""What SimpleJWT splits ``Authorization`` on (``bytes.split()``: ASCII whitespace, tabs too)."""


class BadAuthorizationHeader(TokenInvalid):
    """``token_invalid``: a header in one of our schemes without exactly one token after it, which SimpleJWT
    refuses as ``bad_authorization_header`` (its body goes in front, :func:`refusal_body`)."""

    description = "Authorization header must contain two space-delimited values"


def _simple_jwt() -> Mapping[str, Any]:
    found = getattr(settings, "SIMPLE_JWT", None)
    return found if isinstance(found, Mapping) else {}


def _header_types() -> tuple[str, ...]:
    """SimpleJWT's ``AUTH_HEADER_TYPES`` (one string or several), ``("Bearer",)`` by default."""
    types = _simple_jwt().get("AUTH_HEADER_TYPES", ("Bearer",))
    return (types,) if isinstance(types, str) else tuple(str(t) for t in types)


def token_of(authorization: str | None) -> tuple[str, bool] | None:
    """The token of ``authorization`` and whether it is ``DPoP``; None for no header, an empty one, or a
    scheme neither ``DPoP`` nor one of ``AUTH_HEADER_TYPES``: another authentication's, as SimpleJWT
    leaves it. Schemes are compared without case (RFC 9110 section 11.1; SimpleJWT compares bytes)."""
    parts = _SPACES.split((authorization or "").strip(" \t\n\r\x0b\x0c"))
    scheme = parts[0].lower()
    dpop = scheme == "dpop"
    if not scheme or not (dpop or scheme in {t.lower() for t in _header_types()}):
        return None
    one_joined_authorization(authorization)  # two headers, one of them ours, joined by the server
    if len(parts) != 2:
        raise BadAuthorizationHeader()
    return parts[1], dpop


def presented_token(request: HttpRequest) -> tuple[str, Presented] | None:
    """The request's access token and how it was presented (``DPoP``: with the request's method, URL
    without query and ``DPoP`` proof, as ``keyturn.middleware.django.bearer_request`` reads them)."""
    header = request.META.get(str(_simple_jwt().get("AUTH_HEADER_NAME", "HTTP_AUTHORIZATION")))
    found = token_of(header if isinstance(header, str) else None)
    if found is None:
        return None
    token, dpop = found
    if not dpop:
        return token, BEARER
    proof = request.headers.get("DPoP")
    url = request.build_absolute_uri(request.path)
    return token, Presented("dpop", request.method or "", url, (proof,) if proof else ())


def authenticate_request(request: HttpRequest) -> tuple[Any, AccessClaims] | None:
    """The user and claims of ``request``'s access token; None when it carries none of ours."""
    found = presented_token(request)
    return None if found is None else authenticate_token(*found)


def authenticate_token(token: str, presented: Presented = BEARER) -> tuple[Any, AccessClaims]:
    """The Django user and the claims of a valid access token; a ``KeyturnError`` otherwise."""
    svc = service()
    claims = _verified(svc, token, presented)
    user = find_user(claims.sub)
    if user is None or not is_active(user):
        raise TokenRevoked("The token's user is gone or inactive.")
    return user, claims


def _verified(svc: ProjectService, token: str, presented: Presented) -> AccessClaims:
    """The claims of a Keyturn access token or, while the migration lasts, a SimpleJWT one. A refresh
    token of either is refused in SimpleJWT's words (:class:`~.simplejwt.WrongTokenType`)."""
    verifier = svc.verifier()
    try:
        return verifier.verify(token, presented)
    except TokenInvalid:
        other = svc.run(lambda rt: of_other_type(rt, token, "access"))
        if other is not None:
            raise other from None
        until = svc.config.migration_until
        if until is None:
            raise
        from .legacy import is_refresh, verify_access  # SimpleJWT's tokens, only while the migration lasts

        try:
            claims = verify_access(token, until)
        except TokenInvalid:
            if is_refresh(token, until):
                raise WrongTokenType() from None
            raise
        verifier.proofs.check(claims, token, presented)  # bound to no key: Bearer only
        return claims


def refusal_form() -> ErrorForm:
    """How this path's refusals are challenged: ``Bearer``, and ``DPoP`` while DPoP is on."""
    return KEYTURN_ERRORS.at_resource(dpop_signing_algs(service().config.settings))


def refusal_body(error: KeyturnError) -> dict[str, object]:
    """Keyturn's error body with SimpleJWT's ``JWTAuthentication`` body in front of it."""
    front: dict[str, object]
    if isinstance(error, BadAuthorizationHeader):
        front = {"detail": error.detail, "code": "bad_authorization_header"}
    elif isinstance(error, TokenError | SessionError):
        message = token_message(error)
        front = {
            "detail": NOT_VALID,
            "code": "token_not_valid",
            "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
        }
    else:
        front = {"detail": error.detail, "code": error.code}
    return {**front, **error_body(error)}
