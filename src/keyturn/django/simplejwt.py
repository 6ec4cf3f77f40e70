"""djangorestframework-simplejwt's four routes and bodies, with Keyturn's sessions behind them.

- ``POST token/`` ``{<USERNAME_FIELD>, password}``: ``{"refresh", "access"}`` (a Keyturn session started
  through ``authenticate()``);
- ``POST token/refresh/`` ``{refresh}``: ``{"access", "refresh"}``, Keyturn's refresh: rotation, the same
  answer to copies inside the grace period, reuse detection (and SimpleJWT refresh tokens issued before the
  switch while ``SIMPLEJWT_MIGRATION_UNTIL`` lasts, :mod:`.legacy`);
- ``POST token/verify/`` ``{token}``: ``{}`` for a valid access token or a session's current refresh token
  (400 ``Token is blacklisted`` for a revoked one or a rotated one, as SimpleJWT's blacklist answers);
- ``POST token/blacklist/`` ``{refresh}``: ``{}``, and the token's session is over.

Refusals keep SimpleJWT's bodies (``{"detail", "code": "token_not_valid"}`` with 401 and
``WWW-Authenticate: Bearer realm="api"``; ``{"detail"}`` for a failed login; ``{"<field>": [...]}`` with
400 for a missing field; 415 for a body neither JSON nor a form) and add Keyturn's code beside them as
``error``, so an old frontend keeps working and a new one can tell a reuse from an expiry.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping
from typing import Any, Literal

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse

from ..errors import (
    InvalidCredentials,
    KeyturnError,
    RefreshTokenExpired,
    RefreshTokenReused,
    ServerError,
    SessionError,
    SessionRevoked,
    TokenError,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
)
from ..http import error_headers
from ..server.runtime import Runtime
from ..sessions import TokenPair
from . import _http, legacy
from ._flow import Core, DualView, Flow, Orm, Step, run_async, run_sync
from .service import service
from .views import FlowMaker, password_login, refreshed

__all__ = [
    "ExpiredOfWrongType",
    "WrongTokenType",
    "blacklist",
    "obtain_pair",
    "of_other_type",
    "refresh",
    "token_message",
    "verify",
]

REALM = "api"
"""SimpleJWT's ``WWW-Authenticate`` realm."""
NO_ACCOUNT = "No active account found with the given credentials"
DETAIL = {
    "token_expired": "Token is expired",
    "refresh_token_expired": "Token is expired",
    "session_expired": "Token is expired",
    "refresh_token_reused": "Token is blacklisted",
    "session_revoked": "Token is blacklisted",
    "token_revoked": "Token is blacklisted",
}
"""SimpleJWT's words for each of Keyturn's token codes (:func:`token_message`): the ``detail`` of these
routes' refusals, and the ``message`` of ``KeyturnAuthentication``'s (``keyturn.django.authentication``)."""
WRONG_TYPE = "Token has wrong type"
"""SimpleJWT's ``detail`` for a valid token of the other type (an access token where a refresh token is
wanted): its ``Token.verify_token_type``."""


class WrongTokenType(TokenInvalid):
    """A token of this service (or, while the migration lasts, SimpleJWT's) of the other type: an access
    token where a refresh token is wanted, or a refresh token in ``Authorization``. ``token_invalid`` on
    the wire, as any token that is not of the wanted type, but SimpleJWT's words: "Token has wrong type"
    (its ``Token.verify_token_type``)."""

    description = "The token is of the other type: an access token for a refresh token, or the reverse."


class ExpiredOfWrongType(WrongTokenType):
    """A :class:`WrongTokenType` past its ``exp``: SimpleJWT says "Token is expired" of it, since its
    decoding checks ``exp`` before the type is looked at; still ``token_invalid`` on the wire (it is no
    token of the wanted type, fresh or not)."""

    description = "The token is of the other type, and expired."


def token_message(error: KeyturnError) -> str:
    """SimpleJWT's message for a refused token: "Token is expired" for :class:`ExpiredOfWrongType`,
    "Token has wrong type" for another :class:`WrongTokenType`, ``DETAIL``'s, else ``Token is invalid``."""
    if isinstance(error, ExpiredOfWrongType):
        return DETAIL["token_expired"]
    if isinstance(error, WrongTokenType):
        return WRONG_TYPE
    return DETAIL.get(error.code, "Token is invalid")


async def of_other_type(
    rt: Runtime, token: str, wanted: Literal["access", "refresh"]
) -> WrongTokenType | None:
    """What SimpleJWT says of a refused token that is this service's token of the type other than
    ``wanted`` (its signature, issuer and shape verified): :class:`ExpiredOfWrongType` past its ``exp``,
    :class:`WrongTokenType` before it; None for a token that is not one."""
    now = rt.sessions.clock.now()
    codec = rt.sessions.codec
    try:
        if wanted == "refresh":
            codec.decode_access(token, now)
        elif codec.is_expired(codec.decode_refresh(token, now).exp, now):
            return ExpiredOfWrongType()
    except TokenExpired:
        return ExpiredOfWrongType()
    except KeyturnError:
        return None
    return WrongTokenType()


class _Answer(Exception):
    """A finished answer raised from deep in a flow (a 400 with SimpleJWT's field errors, say)."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__("answered")
        self.response = response


def _json(body: object, status: int = 200, headers: Mapping[str, str] | None = None) -> HttpResponse:
    return _http.respond(body, status, {"Cache-Control": "no-store", **(headers or {})})


def refusal(exc: KeyturnError) -> HttpResponse:
    """A Keyturn error in SimpleJWT's shape, with Keyturn's code as ``error``."""
    kept = ("Cache-Control", "Retry-After", "DPoP-Nonce")
    headers = {k: v for k, v in error_headers(exc).items() if k in kept}
    if isinstance(exc, InvalidCredentials):
        body: dict[str, object] = {"detail": NO_ACCOUNT}
    elif isinstance(exc, TokenError | SessionError):
        body = {"detail": token_message(exc), "code": "token_not_valid"}
    else:
        body = {"detail": exc.detail, "code": exc.code}
    if exc.status == 401:
        headers["WWW-Authenticate"] = f'Bearer realm="{REALM}"'
    body["error"] = exc.code
    status = 413 if _http.too_large_status(exc) else exc.status
    return _json(body, status, headers)


FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
"""The media types DRF's parsers take besides JSON (SimpleJWT's views use DRF's defaults)."""


def _fields(request: HttpRequest, *names: str) -> dict[str, str]:
    """The named fields of a JSON or form body, as DRF's parsers and a ``CharField`` read them: a body of
    another media type is 415, and each value is trimmed of surrounding whitespace (``trim_whitespace``,
    the password's too)."""
    raw = _http.raw_body(request)
    data: Any = {}
    media = (request.content_type or "").lower()
    if raw and media in FORMS:
        data = request.POST
    elif raw and media != "application/json":
        declared = request.META.get("CONTENT_TYPE", "")
        body = {"detail": f'Unsupported media type "{declared}" in request.', "error": "invalid_request"}
        raise _Answer(_json(body, 415))
    elif raw:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            body = {"detail": f"JSON parse error - {exc}", "error": "invalid_request"}
            raise _Answer(_json(body, 400)) from None
    if not isinstance(data, Mapping):
        detail = f"Invalid data. Expected a dictionary, but got {type(data).__name__}."
        raise _Answer(_json({"non_field_errors": [detail], "error": "invalid_request"}, 400))
    found: dict[str, str] = {}
    errors: dict[str, object] = {}
    for name in names:
        if name not in data:
            errors[name] = ["This field is required."]
            continue
        value = data.get(name)
        if value is None:
            errors[name] = ["This field may not be null."]
        elif not isinstance(value, str | int | float) or isinstance(value, bool):
            errors[name] = ["Not a valid string."]
        elif str(value).strip() == "":
            errors[name] = ["This field may not be blank."]
        else:
            found[name] = str(value).strip()
    if errors:
        raise _Answer(_json({**errors, "error": "invalid_request"}, 400))
    return found


ALLOW = {"Allow": "POST, OPTIONS"}
"""What SimpleJWT's views (DRF's) take: POST, and OPTIONS, answered with the view's description."""


def _options(name: str) -> HttpResponse:
    """An answer to OPTIONS in the shape of DRF's (``SimpleMetadata``): the view's name and the media types
    it renders and parses. SimpleJWT's adds its view's description and its serializer's fields
    (``actions``), which are SimpleJWT's own text; a client that asks OPTIONS to learn ``Allow`` (CORS
    preflights are answered before a view) gets the same status and header."""
    title = name.replace("_", " ").title()
    parses = ["application/json", "application/x-www-form-urlencoded", "multipart/form-data"]
    return _json({"name": title, "renders": ["application/json"], "parses": parses}, 200, ALLOW)


def _simplejwt(make: FlowMaker, name: str) -> DualView:
    """A view answering POST (and OPTIONS) with SimpleJWT's answers to refusals."""

    def flow(request: HttpRequest) -> Flow:
        if request.method == "OPTIONS":
            return _options(name)
        if request.method != "POST":
            body = {"detail": f'Method "{request.method}" not allowed.', "error": "invalid_request"}
            return _json(body, 405, ALLOW)
        try:
            return (yield from make(request))
        except _Answer as answer:
            return answer.response
        except KeyturnError as exc:
            return refusal(exc)
        except Exception as exc:  # noqa: BLE001  # a bug, the database down: a body, never an HTML page
            _http.logger.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
            return refusal(ServerError())

    def handler(request: HttpRequest) -> HttpResponse:
        return run_sync(flow(request), service().call)

    async def ahandler(request: HttpRequest) -> HttpResponse:
        return await run_async(flow(request), service().acall)

    return DualView(handler, ahandler, name)


def _pair_body(pair: TokenPair, *, refresh_first: bool) -> dict[str, str]:
    if refresh_first:
        return {"refresh": pair.refresh_token, "access": pair.access_token}
    return {"access": pair.access_token, "refresh": pair.refresh_token}


def _user_id_claims(user: Any) -> dict[str, str | int]:
    """SimpleJWT's user id claim (``USER_ID_CLAIM`` = ``USER_ID_FIELD``), for frontends that read it, with
    the value the installed SimpleJWT's ``for_user`` puts there (5.5 makes every id a string)."""
    try:
        from rest_framework_simplejwt.settings import api_settings
        from rest_framework_simplejwt.tokens import AccessToken
    except ImportError:
        return {"user_id": str(user.pk)}
    name = str(api_settings.USER_ID_CLAIM)
    value = AccessToken.for_user(user)[name]
    return {name: value if isinstance(value, int) else str(value)}


def obtain_pair_flow(request: HttpRequest) -> Flow:
    field = str(get_user_model().USERNAME_FIELD)
    given = _fields(request, field, "password")
    pair = yield from password_login(request, given, given[field], claims=_user_id_claims)
    return _json(_pair_body(pair, refresh_first=True))


def refresh_flow(request: HttpRequest) -> Flow:
    token = _fields(request, "refresh")["refresh"]
    try:
        pair = yield from refreshed(request, token)
    except TokenInvalid as refused:  # perhaps a SimpleJWT token from before the switch
        try:
            pair = yield from legacy.exchange(request, token, refused)
        except TokenInvalid as neither:
            yield from _refuse_an_access_token(token)
            raise neither from None
    return _json(_pair_body(pair, refresh_first=False))


def _refuse_an_access_token(token: str) -> Generator[Step, Any, None]:
    """:class:`WrongTokenType` for a refused refresh token that is an access token, Keyturn's or, while
    the migration lasts, SimpleJWT's (an expired one: :class:`ExpiredOfWrongType`, "Token is expired",
    which SimpleJWT's decoding says before it checks a token's type)."""
    other = yield Core(lambda rt: of_other_type(rt, token, "refresh"))
    if other is not None:
        raise other
    until = service().config.migration_until
    if until is None:
        return
    try:
        yield Orm(lambda: legacy.verify_access(token, until))
    except KeyturnError:
        return
    raise WrongTokenType()


async def _check_token(rt: Runtime, token: str) -> None:
    """Whether ``token`` is a live access token or the current refresh token of a live session."""
    try:
        await rt.sessions.authenticate(token)
        return
    except TokenInvalid as not_access:
        refused: KeyturnError = not_access
    now = rt.sessions.clock.now()
    try:
        claims = rt.sessions.codec.decode_refresh(token, now)
    except TokenInvalid:
        raise refused from None
    session = await rt.store.get_session(claims.sid)
    if session is None or session.state != "active" or session.sub != claims.sub:
        raise SessionRevoked()
    if rt.sessions.codec.is_expired(claims.exp, now) or now >= session.absolute_expires_at:
        raise RefreshTokenExpired()
    if claims.jti != session.head_jti:  # rotated: SimpleJWT's BLACKLIST_AFTER_ROTATION blacklisted it
        raise RefreshTokenReused("The refresh token has been rotated; its session has a newer one.")


def _verified(token: str) -> Generator[Step, Any, None]:
    try:
        yield Core(lambda rt: _check_token(rt, token))
    except TokenInvalid as refused:
        until = service().config.migration_until
        if until is None:
            raise
        try:
            yield Orm(lambda: legacy.verify_any(token, until))
        except TokenInvalid:
            raise refused from None


def verify_flow(request: HttpRequest) -> Flow:
    token = _fields(request, "token")["token"]
    try:
        yield from _verified(token)
    except (SessionRevoked, RefreshTokenReused, TokenRevoked) as exc:  # SimpleJWT: blacklisted is a 400
        return _json({"non_field_errors": ["Token is blacklisted"], "error": exc.code}, 400)
    return _json({})


def blacklist_flow(request: HttpRequest) -> Flow:
    token = _fields(request, "refresh")["refresh"]
    try:
        yield Core(lambda rt: rt.sessions.logout(refresh_token=token))
    except TokenInvalid as refused:
        try:
            found = yield from legacy.read(token, refused)
        except TokenInvalid as neither:
            yield from _refuse_an_access_token(token)
            raise neither from None
        yield Core(lambda rt: rt.sessions.revoke(legacy.legacy_sid(found.jti), "logout"))
        yield Orm(lambda: legacy.blacklist(found))
    return _json({})


obtain_pair = _simplejwt(obtain_pair_flow, "token_obtain_pair")
refresh = _simplejwt(refresh_flow, "token_refresh")
verify = _simplejwt(verify_flow, "token_verify")
blacklist = _simplejwt(blacklist_flow, "token_blacklist")
