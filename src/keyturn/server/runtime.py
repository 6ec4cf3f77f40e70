"""Everything one service process needs, built from ``Settings``: store, keys, sessions, users."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from argon2 import PasswordHasher
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..clients import ClientRegistry, secret_key
from ..clock import SystemClock
from ..config import Settings
from ..dpop_gate import DpopGate, nonce_key
from ..keys import MasterKey, load_keys, master_secret
from ..ratelimit import RateLimiter, RateLimitPolicy
from ..sessions import SessionService
from ..store import open_store
from ..typing import Backend, Clock, SubjectCheck
from ..users import UserDirectory

__all__ = ["Runtime", "open_runtime", "warn_if_open"]

logger = logging.getLogger("keyturn.server")


def warn_if_open(data_dir: Path) -> None:
    """Log a warning when users other than its owner may enter an existing data directory (mode 0755,
    say): it holds the master-secret file and, with the default store, the SQLite file (password hashes)."""
    try:
        mode = data_dir.stat().st_mode & 0o777
    except FileNotFoundError:
        return  # made below, 0700
    if mode & 0o077:
        logger.warning("the data directory %s is open to other users (mode %o): chmod 700 it", data_dir, mode)


@dataclass(slots=True)
class Runtime:
    settings: Settings
    store: Backend
    master: MasterKey
    sessions: SessionService
    users: UserDirectory
    limiter: RateLimiter
    clients: ClientRegistry
    dpop: DpopGate

    async def close(self) -> None:
        await self.store.close()


def username_key(secret: str) -> bytes:
    """The key that hashes usernames in rate-limit buckets: the same in every process of one service."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"keyturn/v1 rate-limit usernames")
    return hkdf.derive(secret.encode())


async def open_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    hasher: PasswordHasher | None = None,
    subject_check: SubjectCheck | Literal["users"] | None = "users",
) -> Runtime:
    """Open the store, load (or make) the keys and wire the services together."""
    clock = clock or SystemClock()
    if settings.secret_key is None or settings.store_url is None:
        warn_if_open(settings.data_dir)
    secret = master_secret(settings)
    master = MasterKey(secret)
    if settings.store_url is None:  # the embedded default lives in the data directory
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
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
    names = username_key(secret)
    users = UserDirectory(store, sessions=sessions, hasher=hasher, clock=clock, name_key=names)
    sessions.subject_check = users if subject_check == "users" else subject_check
    limiter = RateLimiter(store, RateLimitPolicy.from_settings(settings), username_key=names, clock=clock)
    clients = ClientRegistry(store, secret_key(secret), clock=clock, dpop=settings.dpop)
    dpop = DpopGate(settings, store, clock, key=nonce_key(secret))
    return Runtime(settings, store, master, sessions, users, limiter, clients, dpop)
