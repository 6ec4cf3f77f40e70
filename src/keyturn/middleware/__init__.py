"""Resource-server side: validate Keyturn access tokens offline (docs/contract.md: tokens, revocation).

- :class:`AccessTokenVerifier`: keys from the JWKS (or a shared store), the revocation feed polled in
  the background, a validated-token cache;
- ``keyturn.middleware.asgi.KeyturnMiddleware`` (any ASGI app), ``keyturn.middleware.fastapi``
  (``Depends(require_token(...))``), ``keyturn.middleware.wsgi.KeyturnWSGIMiddleware`` (Flask and any
  WSGI app), ``keyturn.middleware.django`` and ``keyturn.middleware.drf``;
- :class:`Presented` (how a request presented its token, :data:`BEARER` or ``DPoP`` with its proof), what
  :meth:`AccessTokenVerifier.verify` takes beside the token.
"""

from __future__ import annotations

from ..keys import PublicKey
from ..revocation import RevocationSource
from ..tokens import AccessClaims
from ._dpop import BEARER, Presented
from ._grants import require_grants, scopes_of
from ._sources import JWKSURL, FeedURL, Keys, KeySource, StaticKeys, StoreKeys, StoreRevocations
from .verifier import AccessTokenVerifier

__all__ = [
    "BEARER",
    "JWKSURL",
    "AccessClaims",
    "AccessTokenVerifier",
    "FeedURL",
    "KeySource",
    "Keys",
    "Presented",
    "PublicKey",
    "RevocationSource",
    "StaticKeys",
    "StoreKeys",
    "StoreRevocations",
    "require_grants",
    "scopes_of",
]
