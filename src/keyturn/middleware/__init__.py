"""Resource-server side: validate Keyturn access tokens offline (docs/contract.md: tokens, revocation).

- :class:`AccessTokenVerifier`: keys from the JWKS (or a shared store), the revocation feed polled in
  the background, a validated-token cache;
- ``keyturn.middleware.asgi.KeyturnMiddleware`` (any ASGI app), ``keyturn.middleware.fastapi``
  (``Depends(require_token(...))``), ``keyturn.middleware.wsgi.KeyturnWSGIMiddleware`` (Flask and any
  WSGI app), ``keyturn.middleware.django`` and ``keyturn.middleware.drf``.
"""

from __future__ import annotations

from ..keys import PublicKey
from ..revocation import RevocationSource
from ..tokens import AccessClaims
from ._dpop import Presented
from ._grants import require_grants, scopes_of
from ._sources import JWKSURL, FeedURL, KeySource, StaticKeys, StoreKeys, StoreRevocations
from .verifier import AccessTokenVerifier

__all__ = [
    "JWKSURL",
    "AccessClaims",
    "AccessTokenVerifier",
    "FeedURL",
    "KeySource",
    "Presented",
    "PublicKey",
    "RevocationSource",
    "StaticKeys",
    "StoreKeys",
    "StoreRevocations",
    "require_grants",
    "scopes_of",
]
