"""Print COUNT new Keyturn sessions of USER, one JSON line each (``{"refresh", "access"}``).

    KEYTURN_DATA_DIR=... KEYTURN_STORE_URL=... python _mint_keyturn.py USER COUNT
    ... | python _mint_keyturn.py USER COUNT --bound     # session i bound to the DPoP key of stdin's line i

What ``POST /auth/login`` does once the password has been checked (``SessionService.start``), on the store
and keys of the ``KEYTURN_*`` environment: the benchmark makes its many sessions this way, so that hashing
a password per session does not take the run's time. With ``--bound``, stdin holds one DPoP key thumbprint
(``jkt``) a line, and each session is bound to its key, as a login with a proof by that key binds it.
"""

from __future__ import annotations

import asyncio
import json
import sys

from keyturn.config import Settings
from keyturn.server.runtime import open_runtime


async def mint(user: str, count: int, thumbprints: list[str | None]) -> None:
    runtime = await open_runtime(Settings())
    try:
        for jkt in thumbprints[:count]:
            pair = await runtime.sessions.start(user, user_agent="keyturn-bench", ip="127.0.0.1", jkt=jkt)
            print(json.dumps({"refresh": pair.refresh_token, "access": pair.access_token}))
    finally:
        await runtime.close()


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or sys.argv[3:] not in ([], ["--bound"]):
        raise SystemExit("usage: python _mint_keyturn.py USER COUNT [--bound]")
    user, count = sys.argv[1], int(sys.argv[2])
    keys: list[str | None] = [None] * count
    if sys.argv[3:]:
        keys = [line.strip() for line in sys.stdin if line.strip()]
        if len(keys) != count:
            raise SystemExit(f"--bound: {count} thumbprints expected on stdin, {len(keys)} given")
    asyncio.run(mint(user, count, keys))
