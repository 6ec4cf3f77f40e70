"""What a call may require of a valid token beyond validity: scopes (RFC 9068 ``scope``) and claim values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import InsufficientScope
from ..tokens import AccessClaims

__all__ = ["require_grants", "scopes_of"]


def scopes_of(claims: AccessClaims) -> frozenset[str]:
    """The token's scopes: ``scope`` as a space-separated string (RFC 9068) or a list of strings."""
    scope = claims.claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    if isinstance(scope, list):
        return frozenset(s for s in scope if isinstance(s, str))
    return frozenset()


def require_grants(
    claims: AccessClaims, scopes: Iterable[str] = (), required_claims: Mapping[str, Any] | None = None
) -> AccessClaims:
    """``claims`` if they carry every scope and every claim value asked for, else ``insufficient_scope``."""
    missing = set(scopes) - scopes_of(claims)
    if missing:
        raise InsufficientScope(f"The access token lacks the scope {' '.join(sorted(missing))}.")
    for name, value in (required_claims or {}).items():
        held = claims.claims.get(name)
        if held != value or isinstance(held, bool) != isinstance(value, bool):  # JSON true is not 1
            raise InsufficientScope(f"The access token's {name} claim does not allow this.")
    return claims
