"""The built-in user store: argon2id password hashes, and the subject check for refreshes.

Applications with their own login call ``SessionService.start`` instead and need none of this.
"""

from __future__ import annotations

import asyncio
import os
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .clock import SystemClock
from .errors import InvalidCredentials
from .sessions import SessionService, TokenPair
from .typing import Clock, UserRecord, UserStore

__all__ = ["MAX_PASSWORD_LENGTH", "UserDirectory", "normalise_username"]

MAX_PASSWORD_LENGTH = 1024
MAX_USERNAME_LENGTH = 256


class UserDirectory:
    """Users with argon2id-hashed passwords; also answers "may this subject hold a session?"."""

    def __init__(
        self,
        store: UserStore,
        *,
        sessions: SessionService | None = None,
        hasher: PasswordHasher | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self._sessions = sessions
        self._hasher = hasher or PasswordHasher()
        self._clock: Clock = clock or SystemClock()
        # Unknown users cost one verification too, so timing does not tell which names exist.
        self._dummy_hash = self._hasher.hash("keyturn: no such user")
        # Each argon2 call takes tens of megabytes and a core for tens of milliseconds: a flood of logins
        # queues here instead of taking every core and gigabytes of memory at once.
        self._hashing = asyncio.Semaphore(os.cpu_count() or 2)

    async def add(self, username: str, password: str) -> bool:
        """Add a user under the normalised name (:func:`normalise_username`); ``False`` if the name, or
        one that looks the same once normalised (a user stored before names were normalised), is taken."""
        _check_username(username)
        username = normalise_username(username)
        _check_username(username)
        _check_password(password)
        if any(normalise_username(u.username) == username for u in await self._store.list_users()):
            return False
        digest = await self._hash(password)
        return await self._store.add_user(UserRecord(username, digest, self._clock.now()))

    async def authenticate(self, username: str, password: str) -> UserRecord:
        """The user, if the password matches and the user is enabled; else ``InvalidCredentials``."""
        user = await self._find(username)
        async with self._hashing:
            digest = user.password_hash if user else self._dummy_hash
            ok = await asyncio.to_thread(self._verify, digest, password)
        if user is None or not ok or user.disabled:
            raise InvalidCredentials()
        return user

    async def login(
        self, username: str, password: str, *, user_agent: str | None = None, ip: str | None = None
    ) -> TokenPair:
        """Check the password and start a session, which a concurrent password change cannot miss.

        A password change (or disabling) revokes every session that exists when it runs; a session
        started by a login that checked the old password just before could be created after that. So the
        user is read again once the session exists: if it changed meanwhile, the session is ended here.
        """
        if self._sessions is None:
            raise RuntimeError("login needs a UserDirectory made with sessions=")
        user = await self.authenticate(username, password)
        pair = await self._sessions.start(user.username, user_agent=user_agent, ip=ip)
        now = await self._store.get_user(user.username)
        if now is None or now.disabled or now.password_hash != user.password_hash:
            await self._sessions.revoke(pair.session_id, "password_changed")
            raise InvalidCredentials()
        return pair

    async def set_password(self, username: str, password: str) -> bool:
        """Change a password and end every session of that user; ``False`` if there is no such user."""
        _check_password(password)
        digest = await self._hash(password)
        username = await self._stored_name(username)
        changed = await self._store.update_user(username, password_hash=digest)
        if changed and self._sessions is not None:
            await self._sessions.revoke_all(username, "password_changed")
        return changed

    async def set_disabled(self, username: str, disabled: bool) -> bool:
        """Disable (ending every session) or enable a user; ``False`` if there is no such user."""
        username = await self._stored_name(username)
        changed = await self._store.update_user(username, disabled=disabled)
        if changed and disabled and self._sessions is not None:
            await self._sessions.revoke_all(username, "subject_disabled")
        return changed

    async def _find(self, username: str) -> UserRecord | None:
        """The user named ``username`` once normalised, else (a user stored before names were
        normalised) exactly as typed."""
        name = normalise_username(username)
        user = await self._store.get_user(name)
        if user is None and name != username:
            user = await self._store.get_user(username)
        return user

    async def _stored_name(self, username: str) -> str:
        user = await self._find(username)
        return username if user is None else user.username

    async def list(self) -> list[UserRecord]:
        return await self._store.list_users()

    async def __call__(self, sub: str) -> bool:
        """The subject check: a user that is gone or disabled may hold no session."""
        user = await self._store.get_user(sub)
        return user is not None and not user.disabled

    async def _hash(self, password: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(self._hasher.hash, password)

    def _verify(self, digest: str, password: str) -> bool:
        try:
            return self._hasher.verify(digest, password)
        except (VerificationError, InvalidHashError):
            return False


def normalise_username(username: str) -> str:
    """A username as it is stored and looked up: NFKC with case folding (Unicode's NFKC_Casefold, close
    enough), so ``Alice``, ``ALICE`` and its fullwidth letters (U+FF21…) are one name and cannot be two users.
    Lookalikes from other scripts (Cyrillic U+0435 for Latin ``e``) are not folded: that needs the
    confusables table of Unicode TR 39."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())


def _check_username(username: str) -> None:
    if (
        not username
        or len(username) > MAX_USERNAME_LENGTH
        or username != username.strip()
        or not username.isprintable()
    ):
        raise ValueError(
            f"a username must be 1 to {MAX_USERNAME_LENGTH} printable characters, without surrounding spaces"
        )


def _check_password(password: str) -> None:
    if not password or len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"a password must be 1 to {MAX_PASSWORD_LENGTH} characters")
