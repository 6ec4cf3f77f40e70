"""The refresh decisions, without I/O: whether a presented refresh token rotates its session, replays the
current head inside the grace period, or is a reuse (a pure function of ``(session, presented record,
claims, now)`` that each store applies atomically: a conditional update, a transaction, a Lua script); and
whether a refresh token is the session's current one, as listing and ending sessions require.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Settings
from .errors import RefreshTokenBound, RefreshTokenExpired, SessionExpired, SessionRevoked, TokenInvalid
from .tokens import DEFAULT_CLIENT_ID, RefreshClaims, TokenCodec
from .typing import (
    CONCURRENT_WITHIN,
    Decide,
    RefreshDecision,
    RefreshRecord,
    Reject,
    Replay,
    Reuse,
    ReuseCause,
    Rotate,
    SessionRecord,
)

__all__ = ["RefreshPolicy", "check_current", "decide_refresh", "for_client", "issued_to", "reuse_cause"]


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
    jkt: str | None = None,
) -> RefreshDecision:
    """Decide what a refresh with verified ``claims`` does, given the stored state at ``now``.

    ``jkt``: the thumbprint of the key of the call's valid DPoP proof, if it had one. A session bound to
    a key (``session.jkt``) refuses a call without a proof by that key before anything else is judged:
    a copy of its token, current or rotated, neither rotates it nor revokes it (RFC 9449).
    """
    if session is None or session.state != "active":
        return Reject(SessionRevoked())
    if session.sub != claims.sub:
        return Reject(TokenInvalid("The refresh token does not belong to its session."))
    if session.jkt is not None and jkt != session.jkt:
        return Reject(RefreshTokenBound())
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


def check_current(
    claims: RefreshClaims,
    session: SessionRecord,
    now: float,
    codec: TokenCodec,
    *,
    expired_ok: bool = False,
    jkt: str | None = None,
    any_key: bool = False,
) -> None:
    """Raise unless ``claims`` are the current, unexpired refresh token of the active ``session``: the rule
    for a refresh token that lists or ends sessions (a rotated or expired copy may be a stolen one).

    ``expired_ok``: the current token may have expired (logout and revoke, which end its own session
    alone: with its current token expired that session cannot be refreshed again, it is dead already).
    ``jkt``: the key thumbprint of the call's checked DPoP proof; a session bound to a key needs a proof by
    it (``refresh_token_bound``), so a copied token cannot end the real user's session either. ``any_key``:
    no proof is asked (introspection: a confidential client reads, it ends nothing).
    """
    if session.sub != claims.sub:
        raise TokenInvalid("The refresh token does not belong to its session.")
    if not expired_ok and now >= session.absolute_expires_at:
        raise SessionExpired()
    if not expired_ok and codec.is_expired(claims.exp, now):
        raise RefreshTokenExpired()
    if claims.jti != session.head_jti:
        raise TokenInvalid("Only the session's current refresh token may list or end sessions.")
    if not any_key and session.jkt is not None and jkt != session.jkt:
        raise RefreshTokenBound()


def issued_to(session: SessionRecord, client_id: str) -> bool:
    """Whether ``session`` was started for ``client_id`` (one stored before clients: the default one)."""
    return (session.client_id or DEFAULT_CLIENT_ID) == client_id


def for_client(decide: Decide, client_id: str) -> Decide:
    """``decide``, but a session started for another client is refused (``token_invalid``) and nothing
    changes: RFC 6749 section 6 refuses a refresh token that was not issued to the authenticated client,
    and another client's call can neither rotate a session nor end it as reused."""

    def decide_for_client(session: SessionRecord | None, presented: RefreshRecord | None) -> RefreshDecision:
        if session is not None and not issued_to(session, client_id):
            return Reject(TokenInvalid("The refresh token was issued to another client."))
        return decide(session, presented)

    return decide_for_client
