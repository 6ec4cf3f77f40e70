"""RFC 7662 token introspection: is this access or refresh token active now, and what does it say?

An access token is active when it verifies, has not expired, and neither it nor its session is revoked
(what ``SessionService.authenticate`` checks); a refresh token when it is its active session's current,
unexpired one (``SessionService.current_refresh``: a rotated copy, which a refresh would answer with a
replay or judge reused, is not active). Anything else is ``{"active": false}``, and says nothing of
why. A store that cannot answer is not "inactive": its ``server_error`` goes to the caller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .errors import InsufficientScope, SessionError, TokenError
from .oauth import INACTIVE, introspection_body
from .sessions import SessionService
from .tokens import DEFAULT_CLIENT_ID
from .typing import JSONValue

__all__ = ["introspect"]

_NOT_ACTIVE = (TokenError, SessionError, InsufficientScope)


async def introspect(sessions: SessionService, token: str, hint: str | None = None) -> dict[str, JSONValue]:
    """The RFC 7662 answer for ``token``; ``hint`` (``token_type_hint``) only orders the two looks."""
    kinds: list[Callable[[SessionService, str], Awaitable[dict[str, JSONValue]]]] = [_access, _refresh]
    if hint == "refresh_token":
        kinds.reverse()
    for kind in kinds:
        try:
            return await kind(sessions, token)
        except _NOT_ACTIVE:
            continue
    return dict(INACTIVE)


async def _access(sessions: SessionService, token: str) -> dict[str, JSONValue]:
    auth = await sessions.authenticate(token)
    return introspection_body(auth.claims.claims, "Bearer")


async def _refresh(sessions: SessionService, token: str) -> dict[str, JSONValue]:
    claims = await sessions.current_refresh(token, any_key=True)
    session = await sessions.store.get_session(claims.sid)
    client_id = (session.client_id if session is not None else None) or DEFAULT_CLIENT_ID
    found: dict[str, JSONValue] = {
        "iss": sessions.settings.issuer,
        "sub": claims.sub,
        "sid": claims.sid,
        "jti": claims.jti,
        "iat": claims.iat,
        "exp": claims.exp,
        "client_id": client_id,
    }
    return introspection_body(found, "refresh_token")
