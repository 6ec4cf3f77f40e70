"""The OAuth 2.0 surface of ``docs/oauth.md`` as Django views: ``keyturn.django.oauth_urls`` routes them.

``token`` (RFC 6749 section 6, ``grant_type=refresh_token``), ``revoke`` (RFC 7009) and ``introspect``
(RFC 7662) answer as ``keyturn serve``'s ``/oauth/*`` do, errors in RFC 6749's form with Keyturn's code
beside them; :func:`server_metadata` is the RFC 8414 document, which the project routes at its root.
Parsing, client authentication and shapes are ``keyturn.oauth``'s and ``keyturn.clients``'; a refresh is
the session routes' own (:func:`.views.refreshed`: the user model asked, the DPoP proof checked).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from ..dpop_gate import token_request_policy
from ..errors import InvalidClient, InvalidRequest
from ..http import OAUTH_ERRORS, one_joined_authorization
from ..introspection import introspect
from ..oauth import (
    ClientCredentials,
    EndpointPaths,
    client_credentials,
    dpop_signing_algs,
    grant_type,
    metadata,
    origin_for,
    parameters,
    token_body,
)
from ..server.runtime import Runtime
from ..typing import JSONValue
from . import _http
from ._flow import Core, DualView, Flow
from .views import endpoint, nonce_headers, refreshed, request_proof, settings_of

__all__ = ["METADATA_MAX_AGE", "NAMESPACE", "introspect_flow", "revoke_flow", "server_metadata", "token_flow"]

NAMESPACE = "keyturn_oauth"
"""``keyturn.django.oauth_urls``' ``app_name``: the metadata finds the endpoints by it (``reverse()``)."""
METADATA_MAX_AGE = 300


def _parameters(request: HttpRequest) -> dict[str, str]:
    """The call's parameters: a form or a JSON object (``keyturn.oauth.parameters``)."""
    return parameters(request.META.get("CONTENT_TYPE", ""), _http.raw_body(request))


def _credentials(request: HttpRequest, params: dict[str, str]) -> ClientCredentials:
    """Who the caller says it is; ``invalid_request`` for more than one ``Authorization`` header, which the
    WSGI server or Django's ASGI handler joined with commas (``keyturn.http.one_joined_authorization``)."""
    return client_credentials(one_joined_authorization(request.headers.get("Authorization")), params)


def _token_parameter(params: dict[str, str]) -> str:
    token = params.get("token")
    if token is None:
        raise InvalidRequest("The token parameter is missing.")
    return token


def token_flow(request: HttpRequest) -> Flow:
    """Rotate a refresh token: ``…/refresh``'s rotation, grace period, reuse detection and DPoP check; a
    token issued to another client than the one that authenticated is ``invalid_grant``; a confidential
    client registered ``--dpop required`` needs a proof on each call."""
    params = _parameters(request)
    refresh_token = grant_type(params)
    credentials = _credentials(request, params)
    client = yield Core(lambda rt: rt.clients.authenticate(credentials))
    pair = yield from refreshed(
        request, refresh_token, client_id=client.client_id, dpop=token_request_policy(client)
    )
    headers = {**_http.NO_STORE, **(yield from nonce_headers())}
    body = token_body(
        pair.access_token, pair.refresh_token, pair.expires_in, pair.refresh_expires_in, pair.token_type
    )
    return _http.respond(body, headers=headers)


def revoke_flow(request: HttpRequest) -> Flow:
    """200 for any token (RFC 7009 section 2.2); another client's token, or a bound session's without a
    proof by its key, revokes nothing."""
    params = _parameters(request)
    credentials = _credentials(request, params)

    async def revoked(rt: Runtime) -> None:
        client = await rt.clients.authenticate(credentials)
        proof = await request_proof(rt, request)
        jkt = None if proof is None else proof.jkt
        await rt.sessions.revoke_token(_token_parameter(params), client_id=client.client_id, jkt=jkt)

    yield Core(revoked)
    return _http.respond({}, headers=_http.NO_STORE)


def introspect_flow(request: HttpRequest) -> Flow:
    """``{"active": true, ...claims}`` for a live access token or a session's current refresh token,
    ``{"active": false}`` for anything else; confidential clients only."""
    params = _parameters(request)
    credentials = _credentials(request, params)

    async def looked_up(rt: Runtime) -> dict[str, JSONValue]:
        client = await rt.clients.authenticate(credentials)
        if not client.confidential:
            raise InvalidClient("Introspection is for confidential clients, which authenticate.")
        return await introspect(rt.sessions, _token_parameter(params), params.get("token_type_hint"))

    return _http.respond((yield Core(looked_up)), headers=_http.NO_STORE)


def metadata_flow(request: HttpRequest) -> Flow:
    """RFC 8414: the endpoints where the project routed ``keyturn.django.oauth_urls`` (``reverse()``),
    under the issuer's scheme and host when ``ISSUER`` is an http(s) URL, else the request's."""
    settings = settings_of()
    paths = EndpointPaths(
        token=reverse(f"{NAMESPACE}:token"),
        revocation=reverse(f"{NAMESPACE}:revoke"),
        introspection=reverse(f"{NAMESPACE}:introspect"),
        jwks=reverse(f"{NAMESPACE}:jwks"),
    )
    base = origin_for(settings.issuer, f"{request.scheme}://{request.get_host()}")
    document = metadata(settings.issuer, base, dpop_algs=dpop_signing_algs(settings), paths=paths)
    return _http.respond(document, headers={"Cache-Control": f"private, max-age={METADATA_MAX_AGE}"})
    yield  # a flow with no steps


def not_found_flow(request: HttpRequest, **_: Any) -> Flow:
    return _http.error(InvalidRequest("Not Found"), status=404, form=OAUTH_ERRORS)
    yield  # a flow with no steps


server_metadata: DualView = endpoint(("GET",), metadata_flow, "server_metadata", form=OAUTH_ERRORS)
"""``GET /.well-known/oauth-authorization-server``: route it at the project's root (RFC 8414 section 3)::

    path(".well-known/oauth-authorization-server", server_metadata)
"""
