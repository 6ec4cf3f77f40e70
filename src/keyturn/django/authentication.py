"""Access tokens to Django users, for ``keyturn.middleware.drf.KeyturnAuthentication``.

With ``keyturn.django`` installed, ``KeyturnAuthentication`` calls :func:`authenticate_token`: the token is
checked offline (keys and revocations from the project's own store, as any resource server checks it) and
``request.user`` is the Django user whose primary key is the token's subject. A user who is gone or
inactive is refused (``token_revoked``) even before the revocation of their sessions reaches the check.
While ``SIMPLEJWT_MIGRATION_UNTIL`` lasts, SimpleJWT access tokens issued before the switch pass too.
"""

from __future__ import annotations

from typing import Any

from ..errors import TokenInvalid, TokenRevoked
from ..tokens import AccessClaims
from .service import service
from .users import find_user, is_active

__all__ = ["authenticate_token"]


def authenticate_token(token: str) -> tuple[Any, AccessClaims]:
    """The Django user and the claims of a valid access token; a ``KeyturnError`` otherwise."""
    svc = service()
    try:
        claims = svc.verifier().verify(token)
    except TokenInvalid:
        if svc.config.migration_until is None:
            raise
        from .legacy import verify_access  # SimpleJWT's tokens, only while the migration lasts

        claims = verify_access(token, svc.config.migration_until)
    user = find_user(claims.sub)
    if user is None or not is_active(user):
        raise TokenRevoked("The token's user is gone or inactive.")
    return user, claims
