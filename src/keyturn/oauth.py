"""OAuth 2.0 without I/O: request parameters, client credentials, RFC error codes, response shapes.

The routes (``keyturn.server.routes.oauth``) parse with these, call the session service and the client
registry, and answer with these shapes; nothing here reads a store or a socket.

- :func:`parameters`: an ``/oauth/*`` body, a form (RFC 6749 appendix B) or a JSON object, as one
  ``{name: value}`` mapping; a parameter sent twice is ``invalid_request`` (RFC 6749 section 3.2).
- :func:`client_credentials`: who the caller says it is: HTTP Basic (``client_secret_basic``), the body's
  ``client_id`` and ``client_secret`` (``client_secret_post``), or a bare ``client_id`` (a public client).
- :func:`oauth_error`: the RFC 6749 section 5.2 ``error`` and the status for a Keyturn error; the body
  carries Keyturn's own code beside it (``keyturn.http.error_body``).
- :func:`token_body`, :func:`introspection_body`, :func:`metadata`: RFC 6749 5.1, RFC 7662 2.2, RFC 8414.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from .config import Settings
from .dpop import ALGORITHMS as DPOP_ALGORITHMS
from .errors import (
    DpopError,
    InvalidClient,
    InvalidDpopProof,
    InvalidRequest,
    KeyturnError,
    RateLimited,
    ServerError,
    SessionError,
    TokenError,
    UnsupportedGrantType,
    UseDpopNonce,
)
from .typing import JSONValue

__all__ = [
    "GRANT_TYPES",
    "INACTIVE",
    "INTROSPECTION_PATH",
    "METADATA_PATH",
    "OAUTH_PREFIX",
    "REVOCATION_PATH",
    "SERVICE_PATHS",
    "TOKEN_ENDPOINT_AUTH_METHODS",
    "TOKEN_PATH",
    "AuthMethod",
    "ClientCredentials",
    "EndpointPaths",
    "client_credentials",
    "dpop_signing_algs",
    "grant_type",
    "introspection_body",
    "metadata",
    "oauth_error",
    "origin_for",
    "parameters",
    "token_body",
]

OAUTH_PREFIX = "/oauth"
TOKEN_PATH = OAUTH_PREFIX + "/token"
REVOCATION_PATH = OAUTH_PREFIX + "/revoke"
INTROSPECTION_PATH = OAUTH_PREFIX + "/introspect"
METADATA_PATH = "/.well-known/oauth-authorization-server"
JWKS_PATH = "/.well-known/jwks.json"

GRANT_TYPES = ("refresh_token",)
AuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]
TOKEN_ENDPOINT_AUTH_METHODS: tuple[AuthMethod, ...] = ("client_secret_basic", "client_secret_post", "none")

MAX_PARAMETERS = 16
"""More fields than any of the endpoints takes; a body with more is refused before it is read further."""
MAX_CLIENT_FIELD = 256
"""Longest client id or secret taken (generated secrets are 43 characters)."""
MAX_BASIC = 8192
"""Longest Basic credentials read (base64 of two form-encoded fields: up to 12 characters a character)."""

INACTIVE: dict[str, JSONValue] = {"active": False}
"""RFC 7662's answer for a token that is revoked, expired, unknown or not a token at all."""

OAuthErrorCode = Literal[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unsupported_grant_type",
    "server_error",
    "temporarily_unavailable",
    "rate_limited",
    "invalid_dpop_proof",
    "use_dpop_nonce",
]


# -- parameters --------------------------------------------------------------------------------------


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def parameters(content_type: str, body: bytes) -> dict[str, str]:
    """The parameters of an ``/oauth/*`` request: a JSON object when the body is declared JSON, else a
    form (RFC 6749 appendix B). Empty values count as omitted (RFC 6749 section 3.2); a name given twice,
    a JSON value that is not a string, or a body that is neither is ``invalid_request``."""
    if _is_json(content_type):
        return _json_parameters(body)
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=MAX_PARAMETERS
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The body is not a form (application/x-www-form-urlencoded).") from None
    found: dict[str, str] = {}
    for name, value in pairs:
        if name in found:
            raise InvalidRequest(f"The parameter {name} is given more than once.")
        found[name] = value
    return {name: value for name, value in found.items() if value}


def _json_parameters(body: bytes) -> dict[str, str]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
        raise InvalidRequest("The body is not JSON.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.")
    if len(data) > MAX_PARAMETERS:
        raise InvalidRequest("The body has too many parameters.")
    found: dict[str, str] = {}
    for name, value in data.items():
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise InvalidRequest(f"The parameter {name} must be a string.")
        found[name] = value
    return found


def grant_type(params: Mapping[str, str]) -> str:
    """The refresh token of a ``grant_type=refresh_token`` request; ``unsupported_grant_type`` for any
    other grant, ``invalid_request`` without one or without the token."""
    grant = params.get("grant_type")
    if grant is None:
        raise InvalidRequest("The grant_type parameter is missing.")
    if grant not in GRANT_TYPES:
        raise UnsupportedGrantType()
    token = params.get("refresh_token")
    if token is None:
        raise InvalidRequest("The refresh_token parameter is missing.")
    return token


# -- client credentials ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """What a caller presented of its client identity; ``client_id`` ``None``: it named none."""

    client_id: str | None
    secret: str | None = field(default=None, repr=False)
    method: AuthMethod = "none"


def client_credentials(authorization: str | None, params: Mapping[str, str]) -> ClientCredentials:
    """The client a request names (RFC 6749 section 2.3.1).

    ``Authorization: Basic`` (id and secret each form-encoded, then base64) is ``client_secret_basic``;
    ``client_id`` with ``client_secret`` in the body is ``client_secret_post``; ``client_id`` alone is a
    public client. Both Basic and a body secret, a body ``client_id`` other than Basic's, or a Basic
    header that does not decode are ``invalid_client`` (or ``invalid_request`` for two methods at once).
    Another scheme in ``Authorization`` (a Bearer token, say) is not client authentication: ignored.
    ``authorization`` is the request's one header: the front ends refuse several first
    (``keyturn.http.one_authorization``, ``one_joined_authorization``: ``invalid_request``).
    """
    body_id, body_secret = params.get("client_id"), params.get("client_secret")
    for value in (body_id, body_secret):
        if value is not None and len(value) > MAX_CLIENT_FIELD:
            raise InvalidClient("The client id or secret is too long.")
    scheme, _, encoded = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic":
        if body_secret is not None:
            if body_id is None:
                raise InvalidRequest("client_secret was given without client_id.")
            return ClientCredentials(body_id, body_secret, "client_secret_post")
        return ClientCredentials(body_id)
    if body_secret is not None:
        raise InvalidRequest("The client authenticated in two ways: use Basic or the body, not both.")
    client_id, secret = _basic(encoded.strip())
    if body_id is not None and body_id != client_id:
        raise InvalidClient("The body's client_id is not the authenticated client's.")
    return ClientCredentials(client_id, secret, "client_secret_basic")


def _basic(encoded: str) -> tuple[str, str]:
    if not encoded or len(encoded) > MAX_BASIC:
        raise InvalidClient("The Basic credentials are missing or too long.")
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidClient("The Basic credentials are not base64 of 'id:secret'.") from None
    raw_id, colon, raw_secret = decoded.partition(":")
    client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
    if not colon or not client_id:
        raise InvalidClient("The Basic credentials are not 'id:secret'.")
    if len(client_id) > MAX_CLIENT_FIELD or len(secret) > MAX_CLIENT_FIELD:
        raise InvalidClient("The client id or secret is too long.")
    return client_id, secret


# -- errors ------------------------------------------------------------------------------------------


def oauth_error(error: KeyturnError) -> tuple[OAuthErrorCode, int]:
    """RFC 6749 section 5.2's ``error`` for ``error``, and the status to answer it with.

    A refresh token that cannot be used, whatever Keyturn's reason (invalid, expired, reused, its session
    ended, another client's, bound to a DPoP key the call did not prove), is ``invalid_grant`` (400); a
    missing or bad DPoP proof ``invalid_dpop_proof`` and a proof without the service's nonce
    ``use_dpop_nonce`` (400, RFC 9449); client authentication ``invalid_client`` (401);
    a malformed call ``invalid_request`` (400, or the status the error carries: 404, 405, 413). A rate
    limit and a server failure have no RFC 6749 code: ``rate_limited`` (429) and ``server_error`` or
    ``temporarily_unavailable`` (500, 503), each ``retryable``.
    """
    if isinstance(error, InvalidClient):
        return "invalid_client", 401
    if isinstance(error, UseDpopNonce):  # RFC 9449 sections 5 and 8: DPoP's own codes, with their nonce
        return "use_dpop_nonce", 400
    if isinstance(error, InvalidDpopProof):
        return "invalid_dpop_proof", 400
    if isinstance(error, UnsupportedGrantType):
        return "unsupported_grant_type", 400
    if isinstance(error, TokenError | SessionError):
        return "invalid_grant", 400
    if isinstance(error, DpopError):  # RFC 9449 sections 5 and 8: invalid_dpop_proof, use_dpop_nonce
        return ("use_dpop_nonce" if isinstance(error, UseDpopNonce) else "invalid_dpop_proof"), 400
    if isinstance(error, RateLimited):
        return "rate_limited", error.status
    if isinstance(error, ServerError):
        return ("temporarily_unavailable" if error.status == 503 else "server_error"), error.status
    if isinstance(error, InvalidRequest):
        return "invalid_request", error.status
    return "invalid_request", 400  # insufficient_scope, invalid_credentials: not met on these routes


# -- responses ---------------------------------------------------------------------------------------


def token_body(
    access_token: str,
    refresh_token: str,
    expires_in: int,
    refresh_expires_in: int,
    token_type: str = "Bearer",  # noqa: S107 (an RFC 6749 token type, not a password)
) -> dict[str, JSONValue]:
    """RFC 6749 section 5.1's successful answer (``refresh_token_expires_in`` is Keyturn's addition);
    ``token_type`` is ``DPoP`` for an access token bound to a DPoP key (RFC 9449 section 5)."""
    return {
        "access_token": access_token,
        "token_type": token_type,
        "expires_in": expires_in,
        "refresh_token": refresh_token,
        "refresh_token_expires_in": refresh_expires_in,
    }


def introspection_body(
    claims: Mapping[str, JSONValue], token_type: Literal["Bearer", "refresh_token"]
) -> dict[str, JSONValue]:
    """RFC 7662 section 2.2 for an active token: ``active``, ``token_type``, then the token's claims
    (the application's own too), with ``username`` the subject, as RFC 7662 names it."""
    body: dict[str, JSONValue] = {"active": True, "token_type": token_type}
    for name, value in claims.items():
        body.setdefault(name, value)
    if "sub" in claims:
        body.setdefault("username", claims["sub"])
    return body


def dpop_signing_algs(settings: Settings) -> tuple[str, ...]:
    """The DPoP proof algorithms the service accepts, ``()`` while DPoP is off: the metadata lists
    ``dpop_signing_alg_values_supported`` only when this is not empty."""
    return () if settings.dpop == "off" else DPOP_ALGORITHMS


@dataclass(frozen=True, slots=True)
class EndpointPaths:
    """Where the endpoints are under the metadata's base URL: ``keyturn serve``'s paths
    (:data:`SERVICE_PATHS`), or wherever a Django project routes them (``reverse()``)."""

    token: str = TOKEN_PATH
    revocation: str = REVOCATION_PATH
    introspection: str = INTROSPECTION_PATH
    jwks: str = JWKS_PATH


SERVICE_PATHS = EndpointPaths()


def metadata(
    issuer: str,
    base_url: str,
    *,
    dpop_algs: Sequence[str] = (),
    paths: EndpointPaths = SERVICE_PATHS,
) -> dict[str, JSONValue]:
    """RFC 8414's authorization server metadata; endpoints are ``base_url`` (no trailing slash) + path."""
    document: dict[str, JSONValue] = {
        "issuer": issuer,
        "token_endpoint": base_url + paths.token,
        "revocation_endpoint": base_url + paths.revocation,
        "introspection_endpoint": base_url + paths.introspection,
        "jwks_uri": base_url + paths.jwks,
        "grant_types_supported": list(GRANT_TYPES),
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": list(TOKEN_ENDPOINT_AUTH_METHODS),
        "revocation_endpoint_auth_methods_supported": list(TOKEN_ENDPOINT_AUTH_METHODS),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }
    if dpop_algs:
        document["dpop_signing_alg_values_supported"] = list(dpop_algs)
    return document


def base_url_for(issuer: str, request_base: str) -> str:
    """Where the endpoints are: the issuer when it is an http(s) URL (set ``ISSUER`` to the service's
    public URL for metadata that names no address from a request), else the request's own base URL."""
    if issuer.startswith(("https://", "http://")):
        return issuer.rstrip("/")
    return request_base.rstrip("/")


def origin_for(issuer: str, request_origin: str) -> str:
    """The scheme and host of the endpoints, for routes that know their own full paths (a Django
    project's ``reverse()``, which carries its script prefix): the issuer's when it is an http(s) URL,
    else the request's (``scheme://host``)."""
    if issuer.startswith(("https://", "http://")):
        parts = urlsplit(issuer)
        return f"{parts.scheme}://{parts.netloc}"
    return request_origin.rstrip("/")
