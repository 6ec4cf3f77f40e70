"""Stores, chosen by URL: ``memory://``, ``sqlite:///path``, ``postgresql://…``, ``redis://…``.

The PostgreSQL and Redis backends are imported only when their URL is used, so their drivers are
needed only then (``pip install 'keyturn[postgres]'`` or ``'keyturn[redis]'``).
"""

from __future__ import annotations

from ..errors import ConfigError
from ..typing import Backend
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore", "open_store"]


def open_store(url: str) -> Backend:
    """The store for ``url``, not yet opened (``await store.open()``)."""
    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        return MemoryStore()
    if scheme == "sqlite":
        return SQLiteStore.from_url(url)
    if scheme in ("postgresql", "postgres"):
        try:
            from .postgres import PostgresStore
        except ModuleNotFoundError as exc:
            raise _missing_extra(exc, "postgres", url) from exc
        return PostgresStore.from_url(url)
    if scheme in ("redis", "rediss"):
        try:
            from .redis import RedisStore
        except ModuleNotFoundError as exc:
            raise _missing_extra(exc, "redis", url) from exc
        return RedisStore.from_url(url)
    raise ConfigError(
        f"unsupported store URL scheme {scheme!r}: use memory://, sqlite:///path, postgresql://… or redis://…"
    )


_DRIVERS = {"postgres": ("psycopg", "psycopg_pool"), "redis": ("redis",)}


def _missing_extra(exc: ModuleNotFoundError, extra: str, url: str) -> Exception:
    """A missing driver named as the extra that installs it; any other missing module as it is."""
    if (exc.name or "").partition(".")[0] not in _DRIVERS[extra]:
        return exc
    scheme = url.partition("://")[0]
    return ConfigError(f"{scheme}:// stores need the {exc.name} driver: pip install 'keyturn[{extra}]'")
