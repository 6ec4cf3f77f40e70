"""The built-in user store: argon2id password hashes, and the subject check for refreshes.

Applications with their own login call ``SessionService.start`` instead and need none of this.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import logging
import os
import secrets
import time
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ._scripts import mixed_scripts
from .clock import SystemClock
from .errors import InvalidCredentials, Overloaded
from .events import emit
from .sessions import SessionService, TokenPair
from .typing import Clock, UserRecord, UserStore

__all__ = [
    "LOGIN_RETRY_AFTER",
    "MAX_PASSWORD_LENGTH",
    "LoginAdmission",
    "UserDirectory",
    "normalise_username",
]

MAX_PASSWORD_LENGTH = 1024
MAX_USERNAME_LENGTH = 256
LOGIN_RETRY_AFTER = 1.0
"""Seconds a login refused because too many are queued should wait (its ``Retry-After``)."""
MAX_LOGIN_WAIT = 0.1
"""Seconds a login may expect to wait for a hashing slot; one that would wait longer is refused at once."""


_ADMITTED: contextvars.ContextVar[bool] = contextvars.ContextVar("keyturn_login_admitted", default=False)
"""Set while a whole login request holds its place (``UserDirectory.admit_login``)."""


class LoginAdmission:
    """A place in the login queue, held from ``admit_login`` until this context exits."""

    __slots__ = ("_token", "_users")

    def __init__(self, users: UserDirectory) -> None:
        self._users = users
        self._token: contextvars.Token[bool] | None = None

    def __enter__(self) -> None:
        self._token = _ADMITTED.set(True)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _ADMITTED.reset(self._token)
        self._users._admitted -= 1


class UserDirectory:
    """Users with argon2id-hashed passwords; also answers "may this subject hold a session?"."""

    def __init__(
        self,
        store: UserStore,
        *,
        sessions: SessionService | None = None,
        hasher: PasswordHasher | None = None,
        clock: Clock | None = None,
        max_waiting_logins: int | None = None,
        name_key: bytes | None = None,
    ) -> None:
        """At most ``max_waiting_logins`` logins wait for a hashing slot (default: as many as would wait
        ``MAX_LOGIN_WAIT`` seconds at the hashing speed measured here); one more is refused at once with
        ``Overloaded``. ``name_key`` keys the username hash failed logins are logged under (give the rate
        limiter's, so the two agree; default: a key of this process)."""
        self._store = store
        self._sessions = sessions
        self._hasher = hasher or PasswordHasher()
        self._clock: Clock = clock or SystemClock()
        # Unknown users cost one verification too, so timing does not tell which names exist.
        started = time.perf_counter()  # durations of work, not the time of day: no injected clock
        self._dummy_hash = self._hasher.hash("keyturn: no such user")
        self._hash_seconds = max(time.perf_counter() - started, 0.001)  # kept up to date by each login
        # Each argon2 call takes tens of megabytes and a core for tens of milliseconds: a flood of logins
        # queues here instead of taking every core and gigabytes of memory at once, and only as deep as
        # a real user's login can wait: past that a login is refused at once (503, Retry-After), so that a
        # flood, even one inside every rate limit, costs the real user a retry rather than seconds.
        self._slots = os.cpu_count() or 2
        self._hashing = asyncio.Semaphore(self._slots)
        self._max_waiting = max_waiting_logins
        self._admitted = 0  # logins hashing or waiting to
        self._name_key = name_key or secrets.token_bytes(32)

    async def add(self, username: str, password: str) -> bool:
        """Add a user under the normalised name (:func:`normalise_username`); ``False`` if the name, or
        one that looks the same once normalised (a user stored before names were normalised), is taken."""
        _check_username(username)
        username = normalise_username(username)
        _check_username(username)
        _check_scripts(username)
        _check_password(password)
        if any(normalise_username(u.username) == username for u in await self._store.list_users()):
            return False
        digest = await self._hash(password)
        return await self._store.add_user(UserRecord(username, digest, self._clock.now()))

    async def authenticate(self, username: str, password: str, *, ip: str | None = None) -> UserRecord:
        """The user, if the password matches and the user is enabled; else ``InvalidCredentials``.

        ``Overloaded`` if too many logins already wait for a hashing slot. A failure is the event
        ``login.failed`` with the reason and a keyed hash of the username, never the name or password.
        """
        if _ADMITTED.get():  # the whole request already holds its place
            user, ok = await self._check(username, password)
        else:
            with self.admit_login():
                user, ok = await self._check(username, password)
        if user is None or not ok or user.disabled:
            reason = "unknown_user" if user is None else "wrong_password" if not ok else "disabled"
            emit("login.failed", user=self._name_hash(username), reason=reason, ip=ip)
            raise InvalidCredentials()
        return user

    async def login(
        self,
        username: str,
        password: str,
        *,
        user_agent: str | None = None,
        ip: str | None = None,
        client_id: str | None = None,
        jkt: str | None = None,
    ) -> TokenPair:
        """Check the password and start a session, which a concurrent password change cannot miss.

        A password change (or disabling) revokes every session that exists when it runs; a session
        started by a login that checked the old password just before could be created after that. So the
        user is read again once the session exists: if it changed meanwhile, the session is ended here.
        """
        if self._sessions is None:
            raise RuntimeError("login needs a UserDirectory made with sessions=")
        user = await self.authenticate(username, password, ip=ip)
        pair = await self._sessions.start(
            user.username, user_agent=user_agent, ip=ip, client_id=client_id, jkt=jkt
        )
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

    @property
    def user_store(self) -> UserStore:
        """Where the users are: a session store that is this one answers the subject check itself
        (``keyturn.typing.UserStoreCheck``)."""
        return self._store

    async def __call__(self, sub: str) -> bool:
        """The subject check: a user that is gone or disabled may hold no session."""
        user = await self._store.get_user(sub)
        return user is not None and not user.disabled

    async def _hash(self, password: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(self._hasher.hash, password)

    def admit_login(self) -> LoginAdmission:
        """A place in the login queue, for ``with``; ``Overloaded`` at once if there is none.

        ``authenticate`` takes one itself; a server takes one for the whole login request, before any
        of its work (the rate-limit step included), so that a refused login costs nothing.
        """
        if self._admitted >= self._slots + self._waiting_allowed():
            emit("login.overloaded", logging.DEBUG, admitted=self._admitted)
            raise Overloaded(LOGIN_RETRY_AFTER, "Too many logins at once; retry shortly.")
        self._admitted += 1
        return LoginAdmission(self)

    async def _check(self, username: str, password: str) -> tuple[UserRecord | None, bool]:
        user = await self._find(username)
        async with self._hashing:
            digest = user.password_hash if user else self._dummy_hash
            started = time.perf_counter()
            ok = await asyncio.to_thread(self._verify, digest, password)
            self._hash_seconds += (time.perf_counter() - started - self._hash_seconds) / 8
        return user, ok

    def _waiting_allowed(self) -> int:
        if self._max_waiting is not None:
            return self._max_waiting
        return int(self._slots * MAX_LOGIN_WAIT / self._hash_seconds)

    def _name_hash(self, username: str) -> str:
        digest = hmac.new(self._name_key, username.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return digest.hexdigest()[:32]

    def _verify(self, digest: str, password: str) -> bool:
        try:
            return self._hasher.verify(digest, password)
        except (VerificationError, InvalidHashError):
            return False


def normalise_username(username: str) -> str:
    """A username as it is stored and looked up: NFKC with case folding (Unicode's NFKC_Casefold, close
    enough), so ``Alice``, ``ALICE`` and its fullwidth letters (U+FF21…) are one name and cannot be two users.
    Lookalikes from other scripts (Cyrillic U+0435 for Latin ``e``) are not folded: a new name that mixes
    scripts is refused instead (``keyturn._scripts``)."""
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


def _check_scripts(username: str) -> None:
    if mixed := mixed_scripts(username):
        raise ValueError(
            f"a username must be written in one script, not {' and '.join(mixed)} together: "
            "mixed scripts make lookalikes of other names"
        )


def _check_password(password: str) -> None:
    if not password or len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"a password must be 1 to {MAX_PASSWORD_LENGTH} characters")
