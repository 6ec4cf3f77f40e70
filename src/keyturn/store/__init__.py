"""Stores, chosen by URL: ``memory://``, ``sqlite:///path``."""

from __future__ import annotations

from ..errors import ConfigError
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore", "StoreBackend", "open_store"]

StoreBackend = MemoryStore | SQLiteStore


def open_store(url: str) -> StoreBackend:
    """The store for ``url``, not yet opened (``await store.open()``)."""
    scheme = url.partition("://")[0]
    if scheme == "memory":
        return MemoryStore()
    if scheme == "sqlite":
        return SQLiteStore.from_url(url)
    raise ConfigError(f"unsupported store URL scheme {scheme!r}: use memory:// or sqlite:///path")
