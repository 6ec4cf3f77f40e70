"""The OAuth 2.0 surface: ``/oauth/token`` (refresh_token grant), ``/oauth/revoke`` (RFC 7009),
``/oauth/introspect`` (RFC 7662) and ``/.well-known/oauth-authorization-server`` (RFC 8414).

Beside the ``/auth/*`` routes, never instead of them: the same session service (rotation, grace period,
reuse detection, rate limits), the same one error renderer in RFC 6749's form (``OAuthRoute``).
Decisions and shapes are ``keyturn.oauth``'s; the registered clients ``keyturn.clients``'.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ...dpop_gate import token_request_policy
from ...errors import InvalidClient, InvalidRequest, KeyturnError
from ...introspection import introspect
from ...oauth import (
    INTROSPECTION_PATH,
    METADATA_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
    base_url_for,
    client_credentials,
    dpop_signing_algs,
    grant_type,
    metadata,
    parameters,
    token_body,
)
from ...typing import ClientRecord
from ..dpop import proof_key, refresh_key
from ..errors import OAuthRoute
from ..schemas import (
    IntrospectionResponse,
    OAuthErrorResponse,
    OAuthTokenParameter,
    OAuthTokenRequest,
    OAuthTokenResponse,
    ServerMetadata,
)
from ..token_reply import NO_STORE
from ._common import DPOP_HEADER, RATE_LIMITED, authorization, client_ip, keyturn, runtime

__all__ = ["router"]

METADATA_MAX_AGE = 300

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": OAuthErrorResponse, "description": description}
    for status, description in (
        (
            400,
            "invalid_request, unsupported_grant_type, invalid_grant (the refresh token cannot be "
            "used: keyturn_error says why), or invalid_dpop_proof and use_dpop_nonce (RFC 9449)",
        ),
        (401, "invalid_client: client authentication failed (WWW-Authenticate: Basic)"),
        (500, "server_error: nothing was changed; retry with backoff"),
        (503, "temporarily_unavailable: the store is unavailable; retry with backoff"),
    )
}
CLIENT_AUTH: list[dict[str, list[str]]] = [{"client": []}, {}]
"""HTTP Basic (client_secret_basic), or the body's client_id and client_secret, or a bare client_id."""


def _body(model: type[OAuthTokenRequest] | type[OAuthTokenParameter]) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": schema}
                for media in ("application/x-www-form-urlencoded", "application/json")
            },
        },
        "security": CLIENT_AUTH,
    }


async def _request(request: Request) -> tuple[dict[str, str], ClientRecord]:
    """The call's parameters and the client it authenticated as (``invalid_client`` if it did not)."""
    params = parameters(request.headers.get("content-type", ""), await request.body())
    credentials = client_credentials(authorization(request), params)
    return params, await runtime(request).clients.authenticate(credentials)


def _token_parameter(params: dict[str, str]) -> str:
    token = params.get("token")
    if token is None:
        raise InvalidRequest("The token parameter is missing.")
    return token


router = APIRouter(tags=["oauth"], route_class=OAuthRoute, responses=ERRORS)


@router.post(
    TOKEN_PATH,
    response_model=OAuthTokenResponse,
    responses=RATE_LIMITED,
    summary="Rotate a refresh token (RFC 6749 section 6, grant_type=refresh_token)",
    openapi_extra={**_body(OAuthTokenRequest), "parameters": [DPOP_HEADER]},
)
async def token(request: Request) -> JSONResponse:
    """The same rotation, grace period and reuse detection as `/auth/refresh`; a refresh token issued
    to another client than the one that authenticated is `invalid_grant` and changes nothing. A
    confidential client registered with `--dpop required` needs a DPoP proof on each call."""
    kt = keyturn(request)
    rt = kt.runtime
    started, outcome = time.perf_counter(), "server_error"
    try:
        params = parameters(request.headers.get("content-type", ""), await request.body())
        refresh_token = grant_type(params)
        credentials = client_credentials(authorization(request), params)
        client = await rt.clients.authenticate(credentials)
        limits = rt.limiter.refresh(client_ip(request, rt.settings))
        claims, now = await rt.sessions.verify_refresh(refresh_token, limits=limits)
        jkt = await refresh_key(rt, request, limits, now, client=token_request_policy(client))
        pair = await rt.sessions.refresh_verified(
            claims, now, limits=limits, client_id=client.client_id, jkt=jkt
        )
        outcome = "ok"
    except KeyturnError as exc:
        outcome = exc.code
        raise
    finally:
        kt.metrics.refreshed(outcome, time.perf_counter() - started)
    body = token_body(
        pair.access_token, pair.refresh_token, pair.expires_in, pair.refresh_expires_in, pair.token_type
    )
    return JSONResponse(body, headers={**NO_STORE, **rt.dpop.nonce_headers()})


@router.post(
    REVOCATION_PATH,
    summary="Revoke a refresh token (its session) or an access token (RFC 7009)",
    openapi_extra=_body(OAuthTokenParameter),
)
async def revoke(request: Request) -> JSONResponse:
    """200 for any token, valid or not (RFC 7009 section 2.2); a token issued to another client than
    the caller's revokes nothing. Public clients name themselves (`client_id`), confidential ones
    authenticate."""
    params, client = await _request(request)
    rt = runtime(request)
    jkt = await proof_key(rt, request)
    await rt.sessions.revoke_token(_token_parameter(params), client_id=client.client_id, jkt=jkt)
    return JSONResponse({}, headers=NO_STORE)


@router.post(
    INTROSPECTION_PATH,
    response_model=IntrospectionResponse,
    response_model_exclude_none=True,
    summary="Is a token active, and its claims (RFC 7662); confidential clients only",
    openapi_extra=_body(OAuthTokenParameter),
)
async def introspect_token(request: Request) -> JSONResponse:
    """`{"active": true, ...claims}` for a live access token or a session's current refresh token;
    `{"active": false}` for anything else (revoked, expired, rotated, unknown)."""
    params, client = await _request(request)
    if not client.confidential:
        raise InvalidClient("Introspection is for confidential clients, which authenticate.")
    body = await introspect(
        runtime(request).sessions, _token_parameter(params), params.get("token_type_hint")
    )
    return JSONResponse(body, headers=NO_STORE)


@router.get(
    METADATA_PATH,
    response_model=ServerMetadata,
    response_model_exclude_none=True,
    summary="Authorization server metadata (RFC 8414)",
)
async def server_metadata(request: Request) -> JSONResponse:
    """Endpoints are under `ISSUER` when it is an http(s) URL, else under the URL the request came to."""
    settings = runtime(request).settings
    base = base_url_for(settings.issuer, str(request.base_url))
    document = metadata(settings.issuer, base, dpop_algs=dpop_signing_algs(settings))
    return JSONResponse(document, headers={"Cache-Control": f"private, max-age={METADATA_MAX_AGE}"})
