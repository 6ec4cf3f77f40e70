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
(RFC 9449 section 7). A refusal is challenged in the scheme the token came in: ``DPoP`` alone, or the
first of ``AUTH_HEADER_TYPES`` (and ``DPoP`` while DPoP is on; :func:`refusal_form`). It keeps
SimpleJWT's body (``{"detail", "code": "token_not_valid", "messages"}``) with Keyturn's beside it
(:func:`refusal_body`), so a frontend that refreshes on ``token_not_valid`` still does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from ..dpop import Scheme
from ..errors import KeyturnError, SessionError, TokenError, TokenInvalid, TokenRevoked
from ..http import KEYTURN_ERRORS, ErrorForm, error_body, is_dpop, one_joined_authorization
from ..middleware import BEARER, Presented
from ..middleware.django import dpop_presented
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
    "scheme_of",
    "token_of",
]

NOT_VALID = "Given token not valid for any token type"
_WHITESPACE = " \t\n\r\x0b\x0c"
_SPACES = re.compile(f"[{_WHITESPACE}]+")
"""What SimpleJWT splits ``Authorization`` on (``bytes.split()``: ASCII whitespace, tabs too)."""


class BadAuthorizationHeader(TokenInvalid):
    """``token_invalid``: a header in one of our schemes without exactly one token after it, which SimpleJWT
    refuses as ``bad_authorization_header`` (its body goes in front, :func:`refusal_body`)."""

    description = "Authorization header must contain two space-delimited values"


def _simple_jwt() -> Mapping[str, Any]:
    found = getattr(settings, "SIMPLE_JWT", None)
    return found if isinstance(found, Mapping) else {}


_SCHEME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""An auth-scheme as RFC 9110 section 11.1 allows one (a ``token``)."""


def _header_types() -> tuple[str, ...]:
    """SimpleJWT's ``AUTH_HEADER_TYPES`` (one string or several), ``("Bearer",)`` by default; entries that
    are no scheme (empty, spaces, a line break) are left out, as no header could carry them."""
    types = _simple_jwt().get("AUTH_HEADER_TYPES", ("Bearer",))
    listed = (types,) if isinstance(types, str) else types if isinstance(types, list | tuple) else ()
    return tuple(t for t in listed if isinstance(t, str) and _SCHEME.fullmatch(t))


def scheme_of(authorization: str | None) -> Scheme | None:
    """The scheme ``authorization`` presents a token in, as :func:`token_of` reads it: ``dpop`` for ``DPoP``
    followed by a space (``keyturn.http.is_dpop``, as every adapter reads it) or by nothing, ``bearer`` for
    one of ``AUTH_HEADER_TYPES``; None for no header, an empty one, or another scheme (``DPoP`` followed by
    a tab too, as elsewhere). Schemes are compared without case (RFC 9110 section 11.1; SimpleJWT
    compares bytes)."""
    header = (authorization or "").strip(_WHITESPACE)
    if is_dpop(header) or header.lower() == "dpop":
        return "dpop"
    first = _SPACES.split(header, maxsplit=1)[0].lower()
    return "bearer" if first and first in {t.lower() for t in _header_types()} else None


def token_of(authorization: str | None) -> tuple[str, Scheme] | None:
    """The token of ``authorization`` and the scheme it came in (:func:`scheme_of`); None where that is
    None: another authentication's header, as SimpleJWT leaves it. The token follows its scheme after any
    whitespace (SimpleJWT splits on it)."""
    scheme = scheme_of(authorization)
    if scheme is None:
        return None
    one_joined_authorization(authorization)  # two headers, one of them ours, joined by the server
    parts = _SPACES.split((authorization or "").strip(_WHITESPACE))
    if len(parts) != 2:
        raise BadAuthorizationHeader()
    return parts[1], scheme


def _authorization(request: HttpRequest) -> str | None:
    """The request's ``SIMPLE_JWT["AUTH_HEADER_NAME"]`` (``HTTP_AUTHORIZATION`` by default)."""
    header = request.META.get(str(_simple_jwt().get("AUTH_HEADER_NAME", "HTTP_AUTHORIZATION")))
    return header if isinstance(header, str) else None


def presented_token(request: HttpRequest) -> tuple[str, Presented] | None:
    """The request's access token and how it was presented (``DPoP``: with the request's method, URL
    without query and ``DPoP`` proof, ``keyturn.middleware.django.dpop_presented``)."""
    found = token_of(_authorization(request))
    if found is None:
        return None
    token, scheme = found
    return token, dpop_presented(request) if scheme == "dpop" else BEARER


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


def refusal_form(request: HttpRequest) -> ErrorForm:
    """How the refusals of ``request`` are challenged: in the first of ``AUTH_HEADER_TYPES`` (the scheme
    SimpleJWT challenged in, which this path reads), and ``DPoP`` while DPoP is on; in ``DPoP`` alone when
    the request presented its token so (:func:`scheme_of`, what :func:`presented_token` reads)."""
    bearer = (_header_types() or ("Bearer",))[0]
    form = KEYTURN_ERRORS.at_resource(dpop_signing_algs(service().config.settings), bearer)
    return form.presented_in(scheme_of(_authorization(request)) or "bearer")


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
