"""``/auth/*``: login, refresh, me, logout, logout-all, sessions, revoke (:func:`build_router`)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ...errors import InvalidRequest, KeyturnError
from ...http import revocation_token
from ..dpop import authenticated, presented_access_token, proof_key, refresh_key, request_proof
from ..errors import KeyturnRoute
from ..presentation import presents_token
from ..schemas import (
    LogoutResponse,
    MeResponse,
    RefreshRequest,
    SessionInfo,
    TokenResponse,
    session_info,
)
from ..token_reply import NO_STORE, ended_reply
from ._common import (
    BEARER,
    BY_REFRESH_TOKEN,
    DPOP_HEADER,
    ERRORS,
    NAMED_BY_EITHER,
    NOT_AN_ACCESS_TOKEN,
    NOT_FOUND,
    RATE_LIMITED,
    REFRESH_BODY,
    REVOKE_BODY,
    authorization,
    bearer_token,
    client_ip,
    keyturn,
    login_credentials,
    refresh_request,
    refresh_token,
    require_refresh_token,
    runtime,
    token_response,
)


async def login(request: Request) -> JSONResponse:
    kt = keyturn(request)
    assert kt.login is not None  # the route exists only with a login
    credentials = login_credentials(request, await request.body())
    rt = kt.runtime
    ip = client_ip(request, rt.settings)
    await rt.limiter.login(kt.login.name(credentials), ip)  # before the password hash, the costly part
    # The proof (and its nonce) before any credential check, for every login: a bad or replayed proof
    # costs no password hash and learns nothing of whether the credentials were right.
    proof = await request_proof(rt, request, client=await kt.login.dpop_policy(rt, credentials))
    pair = await kt.login(rt, request, credentials, rt.dpop.binding(proof))
    return token_response(rt, request, pair)


async def refresh(request: Request) -> JSONResponse:
    # The app calls this straight from server/shortcut.py, past FastAPI's routing: so it takes the request
    # alone and gives the response. (A docstring here would become the operation's OpenAPI description.)
    kt = keyturn(request)
    rt = kt.runtime
    raw = await request.body()  # a body over the size limit is answered 413 here, and not counted
    started, outcome = time.perf_counter(), "server_error"
    try:
        body = refresh_request(request, raw)
        token = require_refresh_token(request, body.refresh_token if body else None)
        limits = rt.limiter.refresh(client_ip(request, rt.settings))
        claims, now = await rt.sessions.verify_refresh(token, limits=limits)
        jkt = await refresh_key(rt, request, limits, now)
        pair = await rt.sessions.refresh_verified(claims, now, limits=limits, jkt=jkt)
        outcome = "ok"
        return token_response(rt, request, pair)
    except KeyturnError as exc:
        outcome = exc.code
        raise
    finally:
        kt.metrics.refreshed(outcome, time.perf_counter() - started)


async def me(request: Request) -> JSONResponse:
    auth = await authenticated(runtime(request), request)
    return JSONResponse(
        {
            "subject": auth.claims.sub,
            "claims": dict(auth.claims.claims),
            "session": session_info(auth.session, auth.session.sid),
        },
        headers=NO_STORE,
    )


async def logout(request: Request, body: RefreshRequest | None = None) -> JSONResponse:
    """The session is named by the access token (``Authorization``: ``Bearer``, or ``DPoP`` with a proof
    for a bound one) or else by the refresh token (an ``Authorization`` of another scheme is not read)."""
    rt = runtime(request)
    access = await presented_access_token(rt, request) if presents_token(authorization(request)) else None
    if access is not None:
        sids = await rt.sessions.logout(access_token=access[0], jkt=access[1])
    else:
        token = require_refresh_token(request, body.refresh_token if body else None)
        sids = await rt.sessions.logout(refresh_token=token, jkt=await proof_key(rt, request))
    return _ended(request, sids)


async def logout_all(request: Request, body: RefreshRequest | None = None) -> JSONResponse:
    rt = runtime(request)
    token = _managing_token(request, body)
    sids = await rt.sessions.logout_all(refresh_token=token, jkt=await proof_key(rt, request))
    return _ended(request, sids)


def _managing_token(request: Request, body: RefreshRequest | None) -> str:
    """The credential that lists and ends sessions: the refresh token (body or cookie), else the bearer
    token, which must then be a refresh token (an access token gets ``insufficient_scope``). Another
    scheme (Basic, say) presents none: with no body or cookie either, ``No refresh token was given.``"""
    token = refresh_token(request, body.refresh_token if body else None)
    if token is None:
        token = bearer_token(request)
    if token is None:
        raise InvalidRequest("No refresh token was given.")
    return token


async def list_sessions(request: Request) -> JSONResponse:
    rt = runtime(request)
    sessions = rt.sessions
    claims = await sessions.current_refresh(_managing_token(request, None), jkt=await proof_key(rt, request))
    found = await sessions.list_sessions(claims.sub)
    return JSONResponse([session_info(s, claims.sid) for s in found], headers=NO_STORE)


async def delete_session(session_id: str, request: Request) -> JSONResponse:
    rt = runtime(request)
    sessions = rt.sessions
    claims = await sessions.current_refresh(_managing_token(request, None), jkt=await proof_key(rt, request))
    try:
        sids = await sessions.revoke_own(claims.sub, session_id)
    except LookupError:
        raise HTTPException(404, "The caller has no such session.") from None
    return JSONResponse({"revoked_sessions": sids}, headers=NO_STORE)


async def revoke(request: Request) -> JSONResponse:
    """Takes ``token`` (and an ignored ``token_type_hint``) as a form or as JSON; always 200."""
    token = revocation_token(request.headers.get("content-type", ""), await request.body())
    rt = runtime(request)
    await rt.sessions.revoke_token(token, jkt=await proof_key(rt, request))
    return JSONResponse({}, headers=NO_STORE)


def _ended(request: Request, sids: list[str]) -> JSONResponse:
    settings = runtime(request).settings
    reply = ended_reply(sids, settings, cookies=request.cookies, routes_path=settings.route_prefix)
    response = JSONResponse(reply.body, headers=reply.headers)
    if reply.cookie is not None:
        response.headers.append("set-cookie", reply.cookie.morsel().OutputString())
    return response


def build_router(
    login_schema: dict[str, Any] | None, resource: type[KeyturnRoute] = KeyturnRoute
) -> APIRouter:
    """The session routes; ``POST /login`` only with a login (``login_schema``: its body's JSON schema).
    ``resource``: the route class of those that take an access token as ``Bearer`` or ``DPoP`` (``/me``,
    ``/logout``), whose refusals challenge in both schemes while DPoP is on (``KeyturnRoute.answering``)."""
    router = APIRouter(tags=["sessions"], responses=ERRORS, route_class=KeyturnRoute)
    if login_schema is not None:
        router.post(
            "/login",
            response_model=TokenResponse,
            responses=RATE_LIMITED,
            summary="Log in",
            openapi_extra={
                "requestBody": {"required": True, "content": _json(login_schema)},
                "parameters": [DPOP_HEADER],
            },
        )(login)
    router.post(
        "/refresh",
        response_model=TokenResponse,
        responses=RATE_LIMITED,
        summary="Rotate a refresh token",
        openapi_extra=REFRESH_BODY,  # the endpoint parses its body itself (refresh_request)
    )(refresh)
    router.add_api_route(
        "/me",
        me,
        methods=["GET"],
        response_model=MeResponse,
        summary="The caller's subject, claims and session",
        openapi_extra=BEARER,
        route_class_override=resource,
    )
    router.add_api_route(
        "/logout",
        logout,
        methods=["POST"],
        response_model=LogoutResponse,
        summary="End the caller's session",
        openapi_extra=NAMED_BY_EITHER,
        route_class_override=resource,
    )
    router.post(
        "/logout-all",
        response_model=LogoutResponse,
        responses=NOT_AN_ACCESS_TOKEN,
        summary="End every session of the caller",
        openapi_extra=BY_REFRESH_TOKEN,
    )(logout_all)
    router.get(
        "/sessions",
        response_model=list[SessionInfo],
        responses=NOT_AN_ACCESS_TOKEN,
        summary="The caller's active sessions",
        openapi_extra=BY_REFRESH_TOKEN,
    )(list_sessions)
    router.delete(
        "/sessions/{session_id}",
        response_model=LogoutResponse,
        responses={**NOT_FOUND, **NOT_AN_ACCESS_TOKEN},
        summary="End one of the caller's sessions",
        openapi_extra=BY_REFRESH_TOKEN,
    )(delete_session)
    router.post(
        "/revoke",
        summary="Revoke a refresh token (its session) or an access token (RFC 7009)",
        openapi_extra=REVOKE_BODY,
    )(revoke)
    return router


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}
