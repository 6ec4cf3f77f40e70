"""SimpleJWT tokens issued before the switch, accepted until ``SIMPLEJWT_MIGRATION_UNTIL``.

Read with djangorestframework-simplejwt itself, so the project's ``SIMPLE_JWT`` settings (``SIGNING_KEY``,
``ALGORITHM``, ``USER_ID_FIELD``, ``USER_ID_CLAIM``, ``LEEWAY``...) decide what is valid, as before the
switch.

- A refresh token (at ``api/token/refresh/``) that is valid and unexpired becomes the first refresh token
  of a Keyturn session whose id is derived from its ``jti``: the exchange is then an ordinary Keyturn
  refresh of that session. The first call rotates; copies inside ``GRACE_PERIOD`` replay the same answer,
  byte for byte, from any process; a copy after it is a reuse, and the session is revoked. The token is
  then blacklisted in SimpleJWT's own ``token_blacklist`` tables, so a rollback to SimpleJWT cannot revive
  it. A token that was blacklisted before the switch (no session was made from it) stays refused.
- An access token passes ``KeyturnAuthentication`` until it expires.

After ``SIMPLEJWT_MIGRATION_UNTIL`` both are refused (``token_invalid``).
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.apps import apps
from django.db import IntegrityError, transaction
from django.http import HttpRequest

from ..errors import (
    KeyturnError,
    RefreshTokenExpired,
    SessionRevoked,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
)
from ..server.runtime import Runtime
from ..sessions import TokenPair
from ..tokens import AccessClaims, RefreshClaims
from ..typing import RefreshRecord, SessionRecord
from . import _http
from ._flow import Core, Orm, Step
from .service import service
from .users import is_active, subject_of

__all__ = ["blacklist", "exchange", "legacy_sid", "read", "verify_access", "verify_any"]

LEGACY_SESSION = "simplejwt"
"""The ``sid`` of a SimpleJWT access token's claims: it names no Keyturn session."""


@dataclass(frozen=True, slots=True)
class LegacyRefresh:
    """A verified SimpleJWT refresh token, its user, and whether SimpleJWT had blacklisted it."""

    token: Any = field(repr=False)
    jti: str
    subject: str
    user_id: Any
    iat: int
    exp: int
    blacklisted: bool


def legacy_sid(jti: str) -> str:
    """The Keyturn session made from the SimpleJWT refresh token ``jti``: the same in every process."""
    digest = hashlib.sha256(b"keyturn/v1 simplejwt session\x00" + jti.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def _open(until: datetime) -> None:
    if time.time() >= until.timestamp():
        raise TokenInvalid("SimpleJWT tokens are no longer accepted; log in again.")


def _simplejwt_token(kind: type[Any], raw: str) -> Any:
    """``raw`` read as SimpleJWT's token class ``kind`` checks it, its refusal in Keyturn's words."""
    from rest_framework_simplejwt.exceptions import TokenError

    try:
        return kind(raw)
    except TokenError as exc:
        raise _simplejwt_error(exc) from exc


def _simplejwt_error(exc: Exception) -> KeyturnError:
    from rest_framework_simplejwt.exceptions import ExpiredTokenError

    if isinstance(exc, ExpiredTokenError):
        return TokenExpired("The SimpleJWT token has expired.")
    return TokenInvalid("The token is neither Keyturn's nor a valid SimpleJWT token.")


def _user_id_claim(payload: Any) -> tuple[str, Any]:
    from rest_framework_simplejwt.settings import api_settings

    return api_settings.USER_ID_CLAIM, payload.get(api_settings.USER_ID_CLAIM)


def _user_for(user_id: Any) -> Any:
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.settings import api_settings

    model = get_user_model()
    try:
        return model._default_manager.get(**{api_settings.USER_ID_FIELD: user_id})
    except (model.DoesNotExist, ValueError, TypeError):
        return None


def read_refresh(raw: str) -> LegacyRefresh:
    """Check a SimpleJWT refresh token as SimpleJWT does, except for the blacklist (ORM; sync)."""
    from rest_framework_simplejwt.tokens import RefreshToken

    class Unlisted(RefreshToken):
        def check_blacklist(self) -> None:  # told apart below: a blacklisted token may be a migrated one
            return None

    token = _simplejwt_token(Unlisted, raw)
    _, user_id = _user_id_claim(token.payload)
    user = _user_for(user_id)
    if user is None or not is_active(user):
        raise SessionRevoked("The token's user is gone or inactive.")
    jti = str(token.payload.get("jti") or token.payload.get(_jti_claim()))
    blacklisted = _blacklist_installed() and _is_blacklisted(jti)
    iat = int(token.payload.get("iat") or time.time())
    return LegacyRefresh(token, jti, subject_of(user), user_id, iat, int(token.payload["exp"]), blacklisted)


def _jti_claim() -> str:
    from rest_framework_simplejwt.settings import api_settings

    return str(api_settings.JTI_CLAIM)


def _blacklist_installed() -> bool:
    return apps.is_installed("rest_framework_simplejwt.token_blacklist")


def _is_blacklisted(jti: str) -> bool:
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

    return bool(BlacklistedToken.objects.filter(token__jti=jti).exists())


def blacklist(found: LegacyRefresh) -> None:
    """Blacklist the token in SimpleJWT's own tables (idempotent; concurrent callers race harmlessly)."""
    if not _blacklist_installed():
        return
    for _ in range(2):
        try:
            with transaction.atomic():
                found.token.blacklist()
            return
        except IntegrityError:  # another process inserted the same row first: look again
            continue


async def _exchange(rt: Runtime, found: LegacyRefresh, request: HttpRequest) -> TokenPair:
    """On the loop: the Keyturn session of ``found`` (made now if need be), refreshed with it."""
    sessions = rt.sessions
    sid = legacy_sid(found.jti)
    ip = _http.client_ip(request, rt.settings)
    now = sessions.clock.now()
    kid = sessions.keys.active_refresh.kid
    if await rt.store.get_session(sid) is None:
        if found.blacklisted:  # blacklisted by SimpleJWT before the switch
            raise SessionRevoked("Token is blacklisted.")  # as SimpleJWT says it
        head = RefreshRecord(
            jti=found.jti, sid=sid, gen=0, kid=kid, issued_at=found.iat, expires_at=found.exp
        )
        name, _ = _user_id_claim({})
        record = SessionRecord(
            sid=sid,
            sub=found.subject,
            created_at=now,
            absolute_expires_at=int(now) + rt.settings.session_absolute_lifetime,
            head_jti=found.jti,
            gen=0,
            last_seen_at=now,
            user_agent=request.headers.get("User-Agent"),
            ip=ip,
            claims={name: found.user_id} if isinstance(found.user_id, str | int) else {},
        )
        try:
            await rt.store.create_session(record, head)
        except Exception:  # however the store reports a duplicate id: did another make it?
            if await rt.store.get_session(sid) is None:
                raise
    claims = RefreshClaims(
        sub=found.subject, sid=sid, jti=found.jti, gen=0, iat=found.iat, exp=found.exp, kid=kid
    )
    # read_refresh found the user, active: the subject check is answered. The address has paid for this
    # call already: the token took from its bucket when it failed as a Keyturn token (verify_refresh), so
    # only the session's own bucket is taken here, and a legacy token counts once, as any refresh does.
    limits = rt.limiter.refresh(None)
    return await sessions.refresh_verified(claims, now, limits=limits, subject_allowed=True)


def read(raw: str, refused: KeyturnError) -> Generator[Step, Any, LegacyRefresh]:
    """A SimpleJWT refresh token while the migration lasts; ``refused`` (what Keyturn said of it as one
    of its own) is raised again when it is no SimpleJWT token either."""
    until = service().config.migration_until
    if until is None:
        raise refused
    _open(until)
    try:
        found: LegacyRefresh = yield Orm(lambda: read_refresh(raw))
    except TokenInvalid:
        raise refused from None
    except TokenExpired:
        raise RefreshTokenExpired() from None
    return found


def exchange(request: HttpRequest, raw: str, refused: KeyturnError) -> Generator[Step, Any, TokenPair]:
    """The flow of a SimpleJWT refresh token at the refresh route (see :func:`read`)."""
    found = yield from read(raw, refused)
    pair: TokenPair = yield Core(lambda rt: _exchange(rt, found, request))
    yield Orm(lambda: blacklist(found))
    return pair


def verify_access(raw: str, until: datetime) -> AccessClaims:
    """A SimpleJWT access token issued before the switch, as ``AccessClaims`` (sync: reads the user)."""
    from rest_framework_simplejwt.tokens import AccessToken

    _open(until)
    token = _simplejwt_token(AccessToken, raw)
    _, user_id = _user_id_claim(token.payload)
    user = _user_for(user_id)
    if user is None:
        raise SessionRevoked("The token's user is gone.")
    _check_password_hash(token.payload, user)
    payload = dict(token.payload)
    return AccessClaims(
        sub=subject_of(user),
        sid=LEGACY_SESSION,
        jti=str(payload.get(_jti_claim(), "")),
        iat=int(payload.get("iat", 0)),
        exp=int(payload["exp"]),
        kid="",
        client_id=None,
        claims=payload,
    )


def is_refresh(raw: str, until: datetime) -> bool:
    """Whether ``raw`` is a SimpleJWT refresh token that verifies (signature, ``exp``) while the migration
    lasts: one sent where an access token is wanted has the wrong type, as SimpleJWT says (sync)."""
    from rest_framework_simplejwt.settings import api_settings
    from rest_framework_simplejwt.tokens import RefreshToken, UntypedToken

    try:
        _open(until)
        token = _simplejwt_token(UntypedToken, raw)
    except KeyturnError:
        return False
    return bool(token.payload.get(api_settings.TOKEN_TYPE_CLAIM) == RefreshToken.token_type)


def _check_password_hash(payload: Any, user: Any) -> None:
    """SimpleJWT's ``CHECK_REVOKE_TOKEN``: an access token whose ``REVOKE_TOKEN_CLAIM`` is not the hash of
    the user's password now was issued before the password changed (``JWTAuthentication.get_user``)."""
    from rest_framework_simplejwt.settings import api_settings
    from rest_framework_simplejwt.utils import get_md5_hash_password

    if not api_settings.CHECK_REVOKE_TOKEN:
        return
    if payload.get(api_settings.REVOKE_TOKEN_CLAIM) != get_md5_hash_password(user.password):
        raise TokenRevoked("The user's password has changed since the token was issued.")


def verify_any(raw: str, until: datetime) -> None:
    """``token/verify/`` for a SimpleJWT token of either type, as SimpleJWT answers it (sync)."""
    from rest_framework_simplejwt.tokens import UntypedToken

    _open(until)
    token = _simplejwt_token(UntypedToken, raw)
    if _blacklist_installed() and _is_blacklisted(str(token.payload.get(_jti_claim(), ""))):
        raise SessionRevoked("Token is blacklisted.")
