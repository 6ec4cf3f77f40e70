"""``python manage.py migrate``: bring Keyturn's tables up to date in the project's database."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from ..store import open_store
from . import conf


def migrate_store(alias: str, database: Mapping[str, Any]) -> None:
    """Open (so migrate) and close the store, when ``alias`` is the database Keyturn uses.

    ``database`` is the connection's settings as ``migrate`` sees them (the test database's, under
    Django's test runner).
    """
    config = conf.load()
    if alias != config.database:
        return
    url = config.store_url if config.own_store_url else conf.store_url_for(database)
    asyncio.run(_open_and_close(url))


async def _open_and_close(url: str) -> None:
    store = open_store(url)
    await store.open()
    await store.close()
