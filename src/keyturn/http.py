"""Framework-neutral HTTP pieces shared by the token service and the resource-server middleware.

The bearer token of an ``Authorization`` header, and Keyturn's error response: a JSON
body ``{"error", "error_description", "retryable"}`` and, on 401, ``WWW-Authenticate`` (RFC 6750).
On the OAuth 2.0 routes the same renderer answers in RFC 6749 section 5.2's form (:data:`OAUTH_ERRORS`):
``error`` is the RFC's code (``keyturn.oauth.oauth_error``) and ``keyturn_error`` Keyturn's own beside it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final
from urllib.parse import parse_qs

from .dpop import ALGORITHMS as DPOP_ALGORITHMS
from .dpop import Scheme
from .errors import (
    AuthorizationRepeated,
    DpopError,
    InsufficientScope,
    InvalidClient,
    InvalidCredentials,
    InvalidRequest,
    KeyturnError,
    Overloaded,
    RateLimited,
    RefreshTokenBound,
    TokenInvalid,
    TokenMissing,
    UseDpopNonce,
)
from .oauth import oauth_error

__all__ = [
    "HOST_REFRESH_COOKIE",
    "KEYTURN_ERRORS",
    "OAUTH_ERRORS",
    "REALM",
    "REFRESH_COOKIE",
    "ErrorForm",
    "OAuthErrorForm",
    "bearer_token",
    "bearer_token_if_any",
    "error_body",
    "error_headers",
    "error_json",
    "error_response",
    "is_dpop",
    "joined_authorizations",
    "one_authorization",
    "one_joined_authorization",
    "refresh_cookie",
    "single_cookie",
]

REALM = "keyturn"
REFRESH_COOKIE = "keyturn_refresh"
HOST_REFRESH_COOKIE = "__Host-" + REFRESH_COOKIE
"""The refresh cookie's name with ``COOKIE_HOST_PREFIX``: browsers keep a ``__Host-`` cookie only when it is
Secure, has Path=/ and no Domain, set by this very host, so a sibling subdomain cannot plant one."""


def refresh_cookie(host_prefix: bool, path: str) -> tuple[str, str]:
    """The refresh cookie's name and ``Path``: ``keyturn_refresh`` at ``path`` (where the session routes
    live), or with ``COOKIE_HOST_PREFIX`` (``host_prefix``) ``__Host-keyturn_refresh`` at ``/``, which the
    prefix requires. Only that name is then read."""
    if host_prefix:
        return HOST_REFRESH_COOKIE, "/"
    return REFRESH_COOKIE, path or "/"


NOT_BEARER = "The Authorization header is not 'Bearer <token>'."


def bearer_token(authorization: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None without the header, ``token_invalid`` if odd:
    :class:`TokenMissing` for another scheme (no bearer credentials at all), :class:`TokenInvalid` for
    ``Bearer`` without a token."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer":
        raise TokenMissing(NOT_BEARER)
    if not token:
        raise TokenInvalid(NOT_BEARER)
    return token


def is_dpop(authorization: str | None) -> bool:
    """Whether ``authorization`` is ``DPoP <token>``: the request presents its access token in the DPoP
    scheme (RFC 9449 section 7.1)."""
    return authorization is not None and authorization[:5].lower() == "dpop "


def one_authorization(values: Sequence[str]) -> str | None:
    """The request's one ``Authorization`` header (None without one), given all its values;
    ``invalid_request`` (:class:`AuthorizationRepeated`) for more than one (RFC 6750 section 3.1)."""
    if len(values) > 1:
        raise AuthorizationRepeated()
    return values[0] if values else None


_JOINED = re.compile(r"^\s*(?:bearer|dpop|basic)\s[^,]*,|,\s*(?:bearer|dpop|basic)\s", re.IGNORECASE)


def joined_authorizations(value: str | None) -> bool:
    """Whether ``value``, an ``Authorization`` as WSGI and Django give it, is several headers joined with
    commas (as gunicorn, wsgiref, Django's runserver and its ASGI handler join repeated headers): a
    ``Bearer``, ``DPoP`` or ``Basic`` value with a comma in it (neither a token nor base64 has one), or a
    comma followed by ``Bearer``/``DPoP``/``Basic`` and a space."""
    return value is not None and _JOINED.search(value) is not None


def one_joined_authorization(value: str | None) -> str | None:
    """``value`` (WSGI's ``HTTP_AUTHORIZATION``), or ``invalid_request`` if it is several joined
    (:func:`joined_authorizations`)."""
    if joined_authorizations(value):
        raise AuthorizationRepeated()
    return value


def single_cookie(cookie_headers: list[str], name: str) -> None:
    """Refuse (``invalid_request``) a request whose ``Cookie`` headers carry ``name`` more than once.

    Frameworks keep one of them (the last, say), and a cookie a sibling subdomain planted for the same
    path could be that one: with two, the service cannot tell which is its own, so it uses neither.
    """
    found = sum(
        1 for header in cookie_headers for part in header.split(";") if part.strip().startswith(name + "=")
    )
    if found > 1:
        raise InvalidRequest(f"The request carries the {name} cookie more than once.")


@dataclass(frozen=True, slots=True)
class ErrorForm:
    """How an error is answered: Keyturn's own form, ``{"error", "error_description", "retryable"}`` with the
    error's status and, on 401, an RFC 6750 (or RFC 9449) challenge. One object per form, chosen once per
    route: :data:`KEYTURN_ERRORS`, or :data:`OAUTH_ERRORS` on the OAuth 2.0 routes.

    ``dpop_algs``: at a protected resource that takes DPoP-bound tokens (:meth:`at_resource`), the proof
    algorithms it accepts. A request without a token, or refused in the ``Bearer`` scheme, is then
    challenged in both schemes, in one ``WWW-Authenticate`` field, ``Bearer`` first and carrying the error
    (RFC 9449 section 7.2): ``Bearer realm="keyturn", DPoP realm="keyturn", algs="ES256 EdDSA"``.

    ``scheme``: how the request presented its access token (:meth:`presented`). A token presented as
    ``DPoP`` is refused in the ``DPoP`` challenge alone, whatever the error (expired, revoked, invalid, its
    proof, a missing scope: RFC 9449 section 7.1), as a refused proof always is.

    ``bearer_scheme``: the name the bearer side is challenged in, ``Bearer`` but where a resource takes its
    bearer tokens under another scheme (``keyturn.django``'s API under SimpleJWT's ``AUTH_HEADER_TYPES``,
    ``JWT``, say): a challenge names a scheme the resource acts on (RFC 9110 section 11.6.1)."""

    dpop_algs: tuple[str, ...] = ()
    scheme: Scheme = "bearer"
    bearer_scheme: str = "Bearer"

    def at_resource(self, dpop_algs: Iterable[str], bearer_scheme: str = "Bearer") -> ErrorForm:
        """This form at a resource that accepts DPoP proofs signed with ``dpop_algs`` (none: DPoP is off,
        and only the bearer side is challenged) and bearer tokens under ``bearer_scheme``."""
        return replace(self, dpop_algs=tuple(dpop_algs), bearer_scheme=bearer_scheme)

    def presented(self, authorization: str | None) -> ErrorForm:
        """This form for a request whose ``Authorization`` is ``authorization``: the refusals of one that
        used the ``DPoP`` scheme (:func:`is_dpop`) are challenged in that scheme. What a resource's adapter
        passes, knowing the header; a route that reads no access token keeps its form as it is."""
        return self.presented_in("dpop" if is_dpop(authorization) else "bearer")

    def presented_in(self, scheme: Scheme) -> ErrorForm:
        """This form for a request whose token its adapter found presented in ``scheme``."""
        return self if scheme == self.scheme else replace(self, scheme=scheme)

    def body(self, error: KeyturnError) -> dict[str, str | bool]:
        return {"error": error.code, "error_description": error.detail, "retryable": error.retryable}

    def status(self, error: KeyturnError) -> int:
        return error.status

    def headers(self, error: KeyturnError, realm: str = REALM) -> dict[str, str]:
        headers = {"Cache-Control": "no-store"}
        if isinstance(error, UseDpopNonce):
            headers["DPoP-Nonce"] = error.nonce
        challenge = self.challenge(error, realm)
        if challenge is not None:
            headers["WWW-Authenticate"] = challenge
        if isinstance(error, RateLimited | Overloaded):
            headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
        return headers

    def challenge(self, error: KeyturnError, realm: str) -> str | None:
        """``WWW-Authenticate`` for ``error``, if it has one."""
        in_dpop = self.scheme == "dpop"
        if isinstance(error, InsufficientScope):
            # RFC 6750 section 3.1's 403, in the scheme the token came in (RFC 9449 section 7.1).
            named = 'error="insufficient_scope"'
            return self._dpop(realm, named) if in_dpop else f'{self.bearer_scheme} realm="{realm}", {named}'
        if isinstance(error, AuthorizationRepeated):
            # RFC 6750 section 3.1: more than one way of presenting a token is invalid_request (400); which
            # scheme was meant is unknown, so both challenges name it (RFC 9449 section 7.2's example).
            named = f'error="invalid_request", error_description="{error.detail}"'
            return self._and_dpop(f'{self.bearer_scheme} realm="{realm}", {named}', realm, named)
        if error.status != 401:
            return None
        if isinstance(error, InvalidCredentials):
            # A failed login: the bare challenge, no error code (not a token refused).
            return f'{self.bearer_scheme} realm="{realm}"'
        if isinstance(error, TokenMissing):
            # RFC 6750 section 3.1 and RFC 9449 section 7.2: a request without a token (none, or another
            # scheme) gets the bare challenges: no error code, no description.
            return self._and_dpop(f'{self.bearer_scheme} realm="{realm}"', realm)
        description = error.detail.replace("\\", "").replace('"', "'")
        described = f'error_description="{error.code}: {description}"'
        if in_dpop or isinstance(error, DpopError | RefreshTokenBound):
            # RFC 9449 section 7.1: a token presented as DPoP, or a refused DPoP proof or key, is challenged
            # in the DPoP scheme alone, which carries the error (use_dpop_nonce at a resource: section 9).
            code = error.code if isinstance(error, DpopError) else "invalid_token"
            return self._dpop(realm, f'error="{code}", {described}')
        bearer = f'{self.bearer_scheme} realm="{realm}", error="invalid_token", {described}'
        return self._and_dpop(bearer, realm)

    def _dpop(self, realm: str, error: str) -> str:
        """The ``DPoP`` challenge alone, carrying ``error``'s parameters, then ``algs`` (Keyturn's own
        algorithms where this form names none: a proof was checked all the same)."""
        return f'DPoP realm="{realm}", {error}, algs="{" ".join(self.dpop_algs or DPOP_ALGORITHMS)}"'

    def _and_dpop(self, bearer: str, realm: str, error: str = "") -> str:
        """``bearer``, followed at a resource that accepts DPoP by the ``DPoP`` challenge with ``algs`` (and
        ``error``'s parameters, if any)."""
        if not self.dpop_algs:
            return bearer
        return f'{bearer}, DPoP realm="{realm}", algs="{" ".join(self.dpop_algs)}"' + (error and f", {error}")


@dataclass(frozen=True, slots=True)
class OAuthErrorForm(ErrorForm):
    """RFC 6749 section 5.2's form: ``error`` is the RFC's code (``keyturn.oauth.oauth_error``) and its
    status (400 for ``invalid_grant``, 401 for ``invalid_client``), ``keyturn_error`` Keyturn's own beside
    it; the one challenge is ``Basic`` for ``invalid_client``, the scheme the client may use."""

    def body(self, error: KeyturnError) -> dict[str, str | bool]:
        return {
            "error": oauth_error(error)[0],
            "error_description": error.detail,
            "keyturn_error": error.code,
            "retryable": error.retryable,
        }

    def status(self, error: KeyturnError) -> int:
        return oauth_error(error)[1]

    def challenge(self, error: KeyturnError, realm: str) -> str | None:
        return f'Basic realm="{realm}"' if isinstance(error, InvalidClient) else None


KEYTURN_ERRORS: Final = ErrorForm()
OAUTH_ERRORS: Final = OAuthErrorForm()

error_body = KEYTURN_ERRORS.body
error_headers = KEYTURN_ERRORS.headers


def error_json(error: KeyturnError) -> bytes:
    return json.dumps(error_body(error), separators=(",", ":")).encode()


def error_response(
    error: KeyturnError, realm: str = REALM, form: ErrorForm = KEYTURN_ERRORS
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of the answer to ``error`` in ``form``, for integrations without a JSON
    response type."""
    body = json.dumps(form.body(error), separators=(",", ":")).encode()
    headers = list(form.headers(error, realm).items())
    headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    return form.status(error), headers, body


def required_bearer_token(authorization: str | None) -> str:
    """The token of ``Authorization: Bearer <token>``; ``token_invalid`` without one (``TokenMissing``)."""
    token = bearer_token(authorization)
    if token is None:
        raise TokenMissing()
    return token


def revocation_token(content_type: str, body: bytes) -> str:
    """The ``token`` of an RFC 7009 revocation request, a form or JSON (``token_type_hint`` is ignored);
    ``invalid_request`` when the body is neither or has none."""
    token: object = None
    try:
        if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            token = parse_qs(body.decode(), max_num_fields=4).get("token", [None])[0]
        else:
            data = json.loads(body)
            token = data.get("token") if isinstance(data, dict) else None
    except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deep
        raise InvalidRequest("The body is neither a form nor JSON.") from exc
    if not isinstance(token, str) or not token:
        raise InvalidRequest("The token parameter is missing.")
    return token


def bearer_token_if_any(authorization: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None for no header or another scheme (Basic, say),
    which another authentication may handle."""
    if authorization is None or authorization.partition(" ")[0].lower() != "bearer":
        return None
    return bearer_token(authorization)
