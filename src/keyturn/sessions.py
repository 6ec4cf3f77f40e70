"""Sessions: start, refresh (rotate / replay / reuse), revoke, list.

Whether a refresh rotates, replays or is a reuse is decided by :func:`~keyturn.rotation.decide_refresh`,
a pure function of ``(session, presented record, claims, now)``; the store applies its answer atomically.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import NoReturn, TypeAlias

from ._answers import Authenticated, TokenPair
from ._reload import KeyReloader
from .clock import SystemClock
from .config import Settings
from .dpop import check_presentation
from .errors import (
    InsufficientScope,
    KeyturnError,
    RefreshTokenReused,
    ServerError,
    SessionRevoked,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
)
from .events import emit
from .keys import KeyRing
from .rotation import RefreshPolicy, check_current, decide_refresh, for_client, issued_to
from .tokens import DEFAULT_CLIENT_ID, RESERVED_CLAIMS, AccessClaims, RefreshClaims, TokenCodec, UnknownKey
from .typing import (
    Clock,
    JSONValue,
    KeyUse,
    Limited,
    RefreshDecision,
    RefreshLimits,
    RefreshRecord,
    Reject,
    Reuse,
    RevokedReason,
    Rotate,
    SessionRecord,
    Store,
    SubjectCheck,
    SubjectRefused,
    UserStoreCheck,
)

__all__ = [
    "Authenticated",
    "ClaimsSource",
    "RefreshLimits",
    "RefreshPolicy",
    "SessionService",
    "TokenPair",
    "decide_refresh",
    "new_id",
    "own_claims",
]


KeySource: TypeAlias = Callable[[], Awaitable[KeyRing]]
"""Loads the service's current key ring (from the store)."""

ClaimsSource: TypeAlias = Callable[[str], Awaitable[Mapping[str, JSONValue]]]
"""The application's claims for a subject (roles, scopes, tenant), asked for each new access token."""


def new_id() -> str:
    """A random identifier for a session or a token (128 bits, base64url), never starting with ``-``: one in
    64 would, and a command line (``keyturn sessions revoke <id>``) would take it for an option."""
    while (made := secrets.token_urlsafe(16)).startswith("-"):
        pass
    return made


def own_claims(claims: Mapping[str, JSONValue]) -> dict[str, JSONValue]:
    """An application's claims for an access token; ``ValueError`` if they would set Keyturn's own."""
    own = dict(claims)
    clash = RESERVED_CLAIMS.intersection(own)
    if clash:
        raise ValueError(f"claims may not set Keyturn's own claims: {sorted(clash)}")
    return own


class SessionService:
    """The token service's core: every session operation goes through here."""

    def __init__(
        self,
        store: Store,
        keys: KeyRing,
        settings: Settings,
        *,
        clock: Clock | None = None,
        subject_check: SubjectCheck | None = None,
        key_source: KeySource | None = None,
        claims_source: ClaimsSource | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.codec = TokenCodec(
            keys, issuer=settings.issuer, audience=settings.audience, leeway=settings.leeway
        )
        self.policy = RefreshPolicy.from_settings(settings)
        self._reloader = (
            KeyReloader(key_source, self.clock, self._install_keys) if key_source is not None else None
        )
        self._subject_check: SubjectCheck | None = None
        self._store_checks_subject = False
        self.subject_check = subject_check
        self.claims_source = claims_source
        """Asked at each refresh that succeeds for the subject's claims, which the new access token carries
        in place of those the session was started with: a role change reaches the next token."""

    @property
    def subject_check(self) -> SubjectCheck | None:
        """Asked on every refresh whether the subject may still hold a session; the store answers it
        itself, with the session's read, when it is the store's own users (``UserStoreCheck``)."""
        return self._subject_check

    @subject_check.setter
    def subject_check(self, check: SubjectCheck | None) -> None:
        self._subject_check = check
        users: object = check.user_store if isinstance(check, UserStoreCheck) else None
        self._store_checks_subject = users is self.store

    @property
    def keys(self) -> KeyRing:
        return self.codec.keys

    def _install_keys(self, keys: KeyRing) -> None:
        self.codec.keys = keys

    async def reload_keys(self) -> None:
        """Load the key ring again from ``key_source``: another process may have rotated the keys."""
        if self._reloader is not None:
            await self._reloader.reload()

    async def _find_key(self, exc: UnknownKey, use: KeyUse) -> None:
        """Return if a reload made ``exc.kid`` known; raise ``exc`` if the key really is unknown."""
        kid = exc.kid

        def known() -> bool:
            ring = self.keys
            return (ring.access_key(kid) if use == "access" else ring.refresh_key(kid)) is not None

        if self._reloader is None or not await self._reloader.find(kid, known):
            raise exc

    async def _decode_access(self, token: str, now: float) -> AccessClaims:
        try:
            return self.codec.decode_access(token, now)
        except UnknownKey as exc:
            await self._find_key(exc, "access")
        return self.codec.decode_access(token, now)

    async def _decode_refresh(self, token: str, now: float) -> RefreshClaims:
        try:
            return self.codec.decode_refresh(token, now)
        except UnknownKey as exc:
            await self._find_key(exc, "refresh")
        return self.codec.decode_refresh(token, now)

    # -- sessions ------------------------------------------------------------------------------

    async def start(
        self,
        subject: str,
        claims: Mapping[str, JSONValue] | None = None,
        *,
        user_agent: str | None = None,
        ip: str | None = None,
        client_id: str | None = None,
        jkt: str | None = None,
    ) -> TokenPair:
        """Open a session for ``subject`` (after the application has authenticated them).

        Its access tokens carry ``claims``; left out, they are asked of ``claims_source`` when there is one.
        ``jkt``: a DPoP key's thumbprint; each refresh then needs a proof by that key (RFC 9449).
        """
        if not isinstance(subject, str) or not subject:
            raise ValueError("subject must be a non-empty string")
        if claims is None and self.claims_source is not None:
            claims = await self.claims_source(subject)
        own = own_claims(claims or {})
        now = self.clock.now()
        created = int(now)
        sid = new_id()
        head = RefreshRecord(
            jti=new_id(),
            sid=sid,
            gen=0,
            kid=self.keys.active_refresh.kid,
            issued_at=created,
            expires_at=created + self.settings.refresh_idle_lifetime,
        )
        session = SessionRecord(
            sid=sid,
            sub=subject,
            created_at=now,
            absolute_expires_at=created + self.settings.session_absolute_lifetime,
            head_jti=head.jti,
            gen=0,
            last_seen_at=now,
            user_agent=user_agent,
            ip=ip,
            client_id=client_id or DEFAULT_CLIENT_ID,
            claims=own,
            jkt=jkt,
        )
        await self.store.create_session(session, head)
        emit("session.started", sid=sid, sub=subject)
        return self._pair(session, head, now)

    async def refresh(
        self,
        refresh_token: str,
        *,
        limits: RefreshLimits | None = None,
        client_id: str | None = None,
        jkt: str | None = None,
    ) -> TokenPair:
        """Rotate, replay within the grace period, or detect reuse (docs/contract.md, Refresh).

        With ``limits`` (docs/contract.md) a call they refuse raises ``RateLimited`` and changes nothing:
        they are checked before any work; a token that does not verify counts against the address alone;
        a verified one takes from its buckets in the store's refresh step itself, before anything is read.
        ``jkt``: the key thumbprint of the call's checked DPoP proof, which a bound session needs.
        """
        claims, now = await self.verify_refresh(refresh_token, limits=limits)
        return await self.refresh_verified(claims, now, limits=limits, client_id=client_id, jkt=jkt)

    async def verify_refresh(
        self, refresh_token: str, *, limits: RefreshLimits | None = None
    ) -> tuple[RefreshClaims, float]:
        """The first half of :meth:`refresh`: the limits' check, then the token's claims and the time of
        the call; a token that does not verify takes from the address's bucket and raises."""
        now = self.clock.now()
        if limits is not None:
            await limits.check()
        try:
            claims = await self._decode_refresh(refresh_token, now)
        except KeyturnError:
            if limits is not None:
                await limits.take(limits.takes(None, now))
            raise
        return claims, now

    async def refresh_verified(
        self,
        claims: RefreshClaims,
        now: float,
        *,
        limits: RefreshLimits | None = None,
        subject_allowed: bool | None = None,
        client_id: str | None = None,
        jkt: str | None = None,
    ) -> TokenPair:
        """The second half of :meth:`refresh`: ``claims`` are those of a token already verified (by
        :meth:`verify_refresh`, or by an integration that vouches for a token it adopted).

        ``subject_allowed`` is the caller's own answer to the subject check, asked where the caller can
        ask it (a Django request's thread, say); ``None`` asks ``subject_check``. With ``client_id``
        (``/oauth/token``) a session started for another client is ``token_invalid`` (``for_client``).
        """
        takes = limits.takes(claims, now) if limits is not None else ()
        user = None  # the subject, when the store checks it in its refresh step
        if subject_allowed is None and self._subject_check is not None:
            if self._store_checks_subject:
                user = claims.sub
            else:
                subject_allowed = await self._subject_check(claims.sub)
        if subject_allowed is False:
            if limits is not None:
                await limits.take(takes)  # a refused call must not revoke either
            await self._subject_gone(claims, now)
        new_jti, new_kid = new_id(), self.keys.active_refresh.kid
        policy = self.policy

        def decide(session: SessionRecord | None, presented: RefreshRecord | None) -> RefreshDecision:
            return decide_refresh(
                session, presented, claims, now, policy, new_jti=new_jti, new_kid=new_kid, jkt=jkt
            )

        bound = decide if client_id is None else for_client(decide, client_id)
        outcome = await self.store.refresh(claims.sid, claims.jti, bound, takes, user=user)
        decision = outcome.decision
        if isinstance(decision, Limited):
            assert limits is not None
            raise limits.refused(decision)
        if isinstance(decision, SubjectRefused):  # the takes were made first, as above
            await self._subject_gone(claims, now)
        if isinstance(decision, Reject):
            raise decision.error
        if isinstance(decision, Reuse):
            emit(
                "session.reuse_detected",
                logging.WARNING,
                sid=claims.sid,
                sub=claims.sub,
                gen=claims.gen,
                cause=decision.cause,
            )
            raise RefreshTokenReused()
        assert outcome.session is not None
        assert outcome.head is not None
        # Routine and frequent: logged at debug level; starts, ends and reuse at info and above.
        if isinstance(decision, Rotate):
            emit("session.rotated", logging.DEBUG, sid=claims.sid, gen=outcome.head.gen)
        else:
            emit(
                "session.replayed", logging.DEBUG, sid=claims.sid, gen=outcome.head.gen, cause=decision.cause
            )
        session = outcome.session
        if self.claims_source is not None:
            # Asked after the store's step, outside the decision: the refresh token (a replay's bytes
            # included) depends on the head alone, the access token is new either way.
            session = replace(session, claims=own_claims(await self.claims_source(claims.sub)))
        try:
            return self._pair(session, outcome.head, now)
        except UnknownKey as exc:  # the head was signed by a process with newer keys than ours
            try:
                await self._find_key(exc, "refresh")
            except UnknownKey:
                raise ServerError("The session's refresh key is missing from the store.") from exc
        return self._pair(session, outcome.head, now)

    async def authenticate(self, access_token: str) -> Authenticated:
        """Verify an access token and check, in the store, that neither it nor its session is revoked."""
        now = self.clock.now()
        claims = await self._decode_access(access_token, now)
        session = await self.store.get_session(claims.sid)
        if session is None or session.state != "active" or session.sub != claims.sub:
            raise TokenRevoked()
        if await self.store.is_access_token_revoked(claims.jti, now):
            raise TokenRevoked()
        return Authenticated(claims, session)

    async def logout(
        self, *, access_token: str | None = None, refresh_token: str | None = None, jkt: str | None = None
    ) -> list[str]:
        """End the session named by an access token or a refresh token; return it if it was active.

        The token must verify, but it may belong to a session that has already ended (logout is
        idempotent: nothing is ended). A refresh token ends an active session only if it is that
        session's current one (``token_invalid`` for a rotated copy, a stolen one say); it may have
        expired, as then the session cannot be refreshed again anyway. ``jkt``: the key of the request's
        checked DPoP proof; with an access token, the proof it came with as ``DPoP`` (``None``: it came as
        ``Bearer``), and a token bound to a key is used only so (:func:`keyturn.dpop.check_presentation`).
        """
        now = self.clock.now()
        if access_token is not None:
            access = await self._decode_access(access_token, now)
            check_presentation(access.jkt, "bearer" if jkt is None else "dpop", jkt)
            sid = access.sid
        elif refresh_token is not None:
            claims = await self._decode_refresh(refresh_token, now)
            session = await self.store.get_session(claims.sid)
            if session is None or session.state != "active":
                return []
            check_current(claims, session, now, self.codec, expired_ok=True, jkt=jkt)
            sid = claims.sid
        else:
            raise ValueError("logout needs an access token or a refresh token")
        return [sid] if await self._revoke(sid, "logout", now) else []

    async def current_refresh(
        self, refresh_token: str, *, jkt: str | None = None, any_key: bool = False
    ) -> RefreshClaims:
        """The claims of an active session's current refresh token, unexpired: the credential that lists
        and ends a user's sessions. Resource servers never receive it, so an access token is refused
        here (``insufficient_scope``), and so is an old or expired refresh token (a stolen copy, say).
        """
        now = self.clock.now()
        try:
            claims = await self._decode_refresh(refresh_token, now)
        except TokenInvalid:
            if self._is_access_token(refresh_token, now):
                raise InsufficientScope(
                    "An access token cannot list or end sessions: send the refresh token."
                ) from None
            raise
        session = await self.store.get_session(claims.sid)
        if session is None or session.state != "active":
            raise SessionRevoked()
        check_current(claims, session, now, self.codec, jkt=jkt, any_key=any_key)
        return claims

    def _is_access_token(self, token: str, now: float) -> bool:
        try:
            self.codec.decode_access(token, now)
        except TokenExpired:
            return True
        except TokenInvalid:
            return False
        return True

    async def logout_all(self, *, refresh_token: str, jkt: str | None = None) -> list[str]:
        """End every session of the subject of an active session's current refresh token."""
        subject = (await self.current_refresh(refresh_token, jkt=jkt)).sub
        return await self.revoke_all(subject, "logout_all")

    async def revoke(self, sid: str, reason: RevokedReason = "revoked") -> bool:
        """End one session; ``False`` if it was missing or already ended."""
        return await self._revoke(sid, reason, self.clock.now())

    async def revoke_own(self, subject: str, sid: str) -> list[str]:
        """End one of ``subject``'s sessions; ``LookupError`` if ``subject`` has no session ``sid``."""
        session = await self.store.get_session(sid)
        if session is None or session.sub != subject:
            raise LookupError(sid)
        return [sid] if await self._revoke(sid, "logout", self.clock.now()) else []

    async def revoke_all(self, subject: str, reason: RevokedReason = "logout_all") -> list[str]:
        """End every session of ``subject``; return their ids."""
        now = self.clock.now()
        sids = await self.store.revoke_subject(subject, reason, now, now + self.settings.revocation_lifetime)
        for sid in sids:
            emit("session.revoked", sid=sid, sub=subject, reason=reason)
        return sids

    async def revoke_token(self, token: str, *, client_id: str | None = None, jkt: str | None = None) -> None:
        """RFC 7009: revoke a refresh token (its whole session) or one access token.

        An invalid, expired or unknown token is not an error: there is nothing left to revoke. A refresh
        token that is not its session's current one (a rotated copy) is such a token: it revokes nothing.
        So is, with ``client_id``, a token issued to another client, and a bound session's token without a
        proof by its key (``jkt``).
        """
        now = self.clock.now()
        try:
            refresh = await self._decode_refresh(token, now)
        except TokenInvalid:
            pass
        else:
            session = await self.store.get_session(refresh.sid)
            if session is None or session.state != "active":
                return
            if client_id is not None and not issued_to(session, client_id):
                return
            try:
                check_current(refresh, session, now, self.codec, expired_ok=True, jkt=jkt)
            except KeyturnError:
                return  # a rotated or expired copy, or one without its key's proof: nothing is revoked
            await self._revoke(refresh.sid, "revoked", now)
            return
        try:
            access = await self._decode_access(token, now)
        except (TokenInvalid, TokenExpired):
            return
        if client_id is not None and (access.client_id or DEFAULT_CLIENT_ID) != client_id:
            return
        await self.store.revoke_access_token(access.jti, access.exp + self.settings.leeway)
        emit("token.revoked", sid=access.sid, jti=access.jti)

    async def list_sessions(self, subject: str, *, include_revoked: bool = False) -> list[SessionRecord]:
        return await self.store.list_sessions(subject, include_revoked=include_revoked)

    async def prune(self) -> int:
        """Delete expired sessions (each with its refresh chain) and revocations; return how many went.

        Records are kept for ``LEEWAY`` past their expiry, as long as a token of theirs can still be
        accepted.
        """
        return await self.store.prune(self.clock.now() - self.settings.leeway)

    async def _subject_gone(self, claims: RefreshClaims, now: float) -> NoReturn:
        """The subject check refused ``claims``' subject: end the session and say so."""
        await self._revoke(claims.sid, "subject_disabled", now)
        raise SessionRevoked("The session's subject may no longer hold a session.")

    async def _revoke(self, sid: str, reason: RevokedReason, now: float) -> bool:
        done = await self.store.revoke_session(sid, reason, now, now + self.settings.revocation_lifetime)
        if done:
            emit("session.revoked", sid=sid, reason=reason)
        return done

    def _pair(self, session: SessionRecord, head: RefreshRecord, now: float) -> TokenPair:
        iat = int(now)
        access_exp = int(min(iat + self.settings.access_token_lifetime, session.absolute_expires_at))
        bound = session.jkt if self.settings.dpop_bind_access_tokens else None
        return TokenPair(
            access_token=self.codec.encode_access(session, new_id(), iat, access_exp, jkt=bound),
            token_type="Bearer" if bound is None else "DPoP",
            refresh_token=self.codec.encode_refresh(session.sub, head),
            session_id=session.sid,
            access_expires_at=access_exp,
            refresh_expires_at=head.expires_at,
            server_time=now,
        )
