"""Everything one service process needs, built from ``Settings``: store, keys, sessions, users."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..clock import SystemClock
from ..config import Settings
from ..keys import (
    KeyRing,
    MasterKey,
    load_or_create_secret_file,
    new_access_key,
    new_refresh_key,
    retired_keys,
)
from ..ratelimit import RateLimiter, RateLimitPolicy
from ..sessions import SessionService
from ..store import open_store
from ..typing import Backend, Clock, StoredKey, SubjectCheck
from ..users import UserDirectory

__all__ = ["Runtime", "load_keys", "open_runtime", "rotate_keys"]


@dataclass(slots=True)
class Runtime:
    settings: Settings
    store: Backend
    master: MasterKey
    sessions: SessionService
    users: UserDirectory
    limiter: RateLimiter

    async def close(self) -> None:
        await self.store.close()


def master_secret(settings: Settings) -> str:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    return load_or_create_secret_file(settings.data_dir)


def master_key(settings: Settings) -> MasterKey:
    return MasterKey(master_secret(settings))


def username_key(secret: str) -> bytes:
    """The key that hashes usernames in rate-limit buckets: the same in every process of one service."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"keyturn/v1 rate-limit usernames")
    return hkdf.derive(secret.encode())


async def load_keys(store: Backend, master: MasterKey, settings: Settings, clock: Clock) -> KeyRing:
    """The service's key ring, creating the first keys (once, whichever process comes first)."""
    stored = await store.list_keys()
    wanted = settings.access_token_algorithm
    has_access = any(k.use == "access" and k.active and k.alg == wanted for k in stored)
    has_refresh = any(k.use == "refresh" and k.active for k in stored)
    if not (has_access and has_refresh):
        now = clock.now()
        candidates = []
        if not has_access:
            candidates.append(new_access_key(wanted, master, now))
        if not has_refresh:
            candidates.append(new_refresh_key(master, now))
        stored = await store.ensure_keys(candidates)
    return KeyRing.from_stored(stored, master, access_alg=wanted)


async def rotate_keys(store: Backend, master: MasterKey, settings: Settings, clock: Clock) -> KeyRing:
    """Add a new access key and a new refresh key; they sign from now on, the old ones still verify.

    Every process sharing the store picks them up within ``key_reload_interval``, or at once when it
    meets a token signed with them.
    """
    now = clock.now()
    await store.add_keys(
        [new_access_key(settings.access_token_algorithm, master, now), new_refresh_key(master, now)]
    )
    return await load_keys(store, master, settings, clock)


async def prune_keys(
    store: Backend, settings: Settings, clock: Clock, *, dry_run: bool = False
) -> list[StoredKey]:
    """Delete the keys no live token needs any more (see :func:`keyturn.keys.retired_keys`); return them.

    A process that has not reloaded yet may still sign with a key a rotation replaced, so the horizon
    of each use adds ``key_reload_interval`` to the token lifetime and the leeway.
    """
    margin = settings.leeway + settings.key_reload_interval
    retired = retired_keys(
        await store.list_keys(),
        now=clock.now(),
        access_horizon=settings.access_token_lifetime + margin,
        refresh_horizon=settings.refresh_idle_lifetime + settings.grace_period + margin,
    )
    if retired and not dry_run:
        await store.delete_keys([key.kid for key in retired])
    return retired


async def open_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    hasher: PasswordHasher | None = None,
    subject_check: SubjectCheck | Literal["users"] | None = "users",
) -> Runtime:
    """Open the store, load (or make) the keys and wire the services together."""
    clock = clock or SystemClock()
    secret = master_secret(settings)
    master = MasterKey(secret)
    store = open_store(settings.resolved_store_url)
    await store.open()
    try:
        keys = await load_keys(store, master, settings, clock)
    except BaseException:
        await store.close()
        raise
    sessions = SessionService(
        store, keys, settings, clock=clock, key_source=lambda: load_keys(store, master, settings, clock)
    )
    users = UserDirectory(store, sessions=sessions, hasher=hasher, clock=clock)
    sessions.subject_check = users if subject_check == "users" else subject_check
    limiter = RateLimiter(
        store, RateLimitPolicy.from_settings(settings), username_key=username_key(secret), clock=clock
    )
    return Runtime(settings, store, master, sessions, users, limiter)
