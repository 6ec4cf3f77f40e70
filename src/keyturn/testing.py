"""Helpers for testing applications that use Keyturn: a memory store, a frozen clock, a token factory.

service = await make_service(clock=FrozenClock())
pair = await service.start("alice")
clock.advance(901)          # the access token has now expired
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher

from ._sign import with_low_s
from .clock import FrozenClock
from .config import Settings
from .keys import KeyRing, MasterKey, new_access_key, new_refresh_key
from .sessions import SessionService
from .store.memory import MemoryStore
from .tokens import DEFAULT_CLIENT_ID
from .typing import AccessAlgorithm, Backend, Clock, JSONValue
from .users import UserDirectory

__all__ = [
    "FrozenClock",
    "MemoryStore",
    "TestService",
    "TokenFactory",
    "fast_hasher",
    "make_service",
    "make_settings",
]


def fast_hasher() -> PasswordHasher:
    """An argon2id hasher with the smallest cost: fine for tests, never for production."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def make_settings(**overrides: Any) -> Settings:
    """Settings with defaults only (the environment is ignored for the given names)."""
    values: dict[str, Any] = {"secret_key": secrets.token_urlsafe(32), "store_url": "memory://"}
    values.update(overrides)
    return Settings(**values)


@dataclass(slots=True)
class TestService:
    """A ready session service on a memory store, with its parts at hand."""

    __test__ = False  # not a pytest test class

    service: SessionService
    store: Backend
    users: UserDirectory
    clock: Clock
    settings: Settings
    tokens: TokenFactory


async def make_service(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    algorithm: AccessAlgorithm | None = None,
    check_subjects: bool = False,
    store: Backend | None = None,
) -> TestService:
    """A session service with fresh keys on a memory store, and a built-in user directory.

    With ``check_subjects`` every refresh asks the user directory whether the subject may still hold a
    session, as the server does; without it any subject may hold sessions, as for an application that
    logs users in itself. ``store`` (opened by the caller) replaces the memory store.
    """
    settings = settings or make_settings()
    if algorithm is not None:
        settings = settings.model_copy(update={"access_token_algorithm": algorithm})
    clock = clock or FrozenClock()
    assert settings.secret_key is not None, "test settings need a secret_key"
    master = MasterKey(settings.secret_key.get_secret_value())
    store = store or MemoryStore()
    now = clock.now()
    stored = await store.ensure_keys(
        [new_access_key(settings.access_token_algorithm, master, now), new_refresh_key(master, now)]
    )
    keys = KeyRing.from_stored(stored, master)
    service = SessionService(store, keys, settings, clock=clock)
    users = UserDirectory(store, sessions=service, hasher=fast_hasher(), clock=clock)
    if check_subjects:
        service.subject_check = users
    return TestService(service, store, users, clock, settings, TokenFactory(keys, settings, clock))


class TokenFactory:
    """Signs tokens with the service's own keys, with any claims and headers: for tests only."""

    def __init__(self, keys: KeyRing, settings: Settings, clock: Clock) -> None:
        self.keys = keys
        self.settings = settings
        self.clock = clock

    def access_claims(self, **claims: JSONValue) -> dict[str, JSONValue]:
        now = int(self.clock.now())
        base: dict[str, JSONValue] = {
            "iss": self.settings.issuer,
            "sub": "alice",
            "aud": self.settings.audience,
            "iat": now,
            "exp": now + self.settings.access_token_lifetime,
            "jti": secrets.token_urlsafe(16),
            "sid": secrets.token_urlsafe(16),
            "client_id": DEFAULT_CLIENT_ID,
        }
        base.update(claims)
        return base

    def access_token(
        self, claims: Mapping[str, JSONValue] | None = None, headers: Mapping[str, Any] | None = None
    ) -> str:
        """An access token signed with the active access key."""
        key = self.keys.active_access
        head = {"kid": key.kid, "typ": "at+jwt", **(headers or {})}
        token = jwt.encode(dict(claims or self.access_claims()), key.private_key, key.alg, head)
        return with_low_s(token) if key.alg == "ES256" else token  # the only ES256 form Keyturn accepts

    def refresh_token(self, claims: Mapping[str, JSONValue], headers: Mapping[str, Any] | None = None) -> str:
        """A refresh token signed with the active refresh key."""
        key = self.keys.active_refresh
        head = {"kid": key.kid, "typ": "rt+jwt", **(headers or {})}
        return jwt.encode(dict(claims), key.secret, "HS256", head)
