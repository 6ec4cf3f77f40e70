"""The refresh decision: whether a presented refresh token rotates its session, replays the current head
inside the grace period, or is a reuse. A pure function of ``(session, presented record, claims, now)``;
each store applies its answer atomically (a conditional update, a transaction, a Lua script).
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Settings
from .errors import RefreshTokenExpired, SessionExpired, SessionRevoked, TokenInvalid
from .tokens import RefreshClaims
from .typing import (
    CONCURRENT_WITHIN,
    RefreshDecision,
    RefreshRecord,
    Reject,
    Replay,
    Reuse,
    ReuseCause,
    Rotate,
    SessionRecord,
)

__all__ = ["RefreshPolicy", "decide_refresh", "reuse_cause"]


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    """The durations a refresh decision depends on."""

    refresh_idle_lifetime: int
    grace_period: float
    leeway: float
    revocation_lifetime: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RefreshPolicy:
        return cls(
            refresh_idle_lifetime=settings.refresh_idle_lifetime,
            grace_period=settings.grace_period,
            leeway=settings.leeway,
            revocation_lifetime=settings.revocation_lifetime,
        )


def decide_refresh(
    session: SessionRecord | None,
    presented: RefreshRecord | None,
    claims: RefreshClaims,
    now: float,
    policy: RefreshPolicy,
    *,
    new_jti: str,
    new_kid: str,
) -> RefreshDecision:
    """Decide what a refresh with verified ``claims`` does, given the stored state at ``now``."""
    if session is None or session.state != "active":
        return Reject(SessionRevoked())
    if session.sub != claims.sub:
        return Reject(TokenInvalid("The refresh token does not belong to its session."))
    if now >= session.absolute_expires_at:
        return Reject(SessionExpired())
    if now > claims.exp + policy.leeway:
        if claims.exp >= session.absolute_expires_at:
            return Reject(SessionExpired())
        return Reject(RefreshTokenExpired())
    if claims.jti == session.head_jti:
        expires_at = int(min(now + policy.refresh_idle_lifetime, session.absolute_expires_at))
        head = RefreshRecord(
            jti=new_jti,
            sid=session.sid,
            gen=session.gen + 1,
            kid=new_kid,
            issued_at=int(now),
            expires_at=expires_at,
        )
        return Rotate(new_head=head, now=now, forget_before=now - policy.grace_period)
    if (
        presented is not None
        and presented.sid == session.sid
        and presented.gen == claims.gen
        and presented.rotated_at is not None
        and now - presented.rotated_at <= policy.grace_period
    ):
        since = now - presented.rotated_at
        return Replay(now=now, cause="concurrent" if since <= CONCURRENT_WITHIN else "retry")
    return Reuse(
        now=now, revocation_expires_at=now + policy.revocation_lifetime, cause=reuse_cause(session, claims)
    )


def reuse_cause(session: SessionRecord, claims: RefreshClaims) -> ReuseCause:
    """What the session's generation says of a token judged reused (see ``ReuseCause``)."""
    if claims.gen >= session.gen:
        return "unknown"
    return "late" if claims.gen == session.gen - 1 else "stale"
