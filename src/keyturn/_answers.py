"""What a session operation answers: a new token pair, or an access token checked with its session."""

from __future__ import annotations

from dataclasses import dataclass, field

from .tokens import AccessClaims
from .typing import SessionRecord

__all__ = ["Authenticated", "TokenPair"]


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or a refresh answers with."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    session_id: str
    access_expires_at: int
    refresh_expires_at: int
    server_time: float
    token_type: str = "Bearer"
    """``DPoP`` when the access token is bound to the session's DPoP key (``cnf.jkt``)."""

    @property
    def expires_in(self) -> int:
        return max(0, int(self.access_expires_at - self.server_time))

    @property
    def refresh_expires_in(self) -> int:
        return max(0, int(self.refresh_expires_at - self.server_time))


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A verified, unrevoked access token and its live session."""

    claims: AccessClaims
    session: SessionRecord
