"""Print COUNT new Keyturn sessions of USER, one JSON line each (``{"refresh", "access"}``).

    KEYTURN_DATA_DIR=... KEYTURN_STORE_URL=... python _mint_keyturn.py USER COUNT

What ``POST /auth/login`` does once the password has been checked (``SessionService.start``), on the store
and keys of the ``KEYTURN_*`` environment: the benchmark makes its many sessions this way, so that hashing
a password per session does not take the run's time.
"""

from __future__ import annotations

import asyncio
import json
import sys

from keyturn.config import Settings
from keyturn.server.runtime import open_runtime


async def mint(user: str, count: int) -> None:
    runtime = await open_runtime(Settings())
    try:
        for _ in range(count):
            pair = await runtime.sessions.start(user, user_agent="keyturn-bench", ip="127.0.0.1")
            print(json.dumps({"refresh": pair.refresh_token, "access": pair.access_token}))
    finally:
        await runtime.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python _mint_keyturn.py USER COUNT")
    asyncio.run(mint(sys.argv[1], int(sys.argv[2])))
