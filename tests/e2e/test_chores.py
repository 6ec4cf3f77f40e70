"""A running server deletes what has expired on its own, every PRUNE_INTERVAL."""

from __future__ import annotations

import time
from pathlib import Path

from ._http import login
from ._server import cluster, run_cli

# Long enough for logins and a CLI listing on a busy machine, short enough for the test to wait out.
SHORT = {
    "KEYTURN_ACCESS_TOKEN_LIFETIME": "5",
    "KEYTURN_REFRESH_IDLE_LIFETIME": "8",
    "KEYTURN_SESSION_ABSOLUTE_LIFETIME": "8",
    "KEYTURN_LEEWAY": "0",
    "KEYTURN_PRUNE_INTERVAL": "1",
}


def test_server_prunes_expired_sessions_by_itself(tmp_path: Path) -> None:
    """Without anyone running `keyturn prune`, expired sessions leave the store."""
    data_dir = tmp_path / "data"
    with cluster(data_dir, 1, SHORT) as group, group.server.client() as http:
        sids = {login(http, group.username, group.password)["session_id"] for _ in range(3)}
        listed = run_cli(data_dir, "sessions", "list", "--all", env=SHORT)
        assert listed.returncode == 0, listed.stderr
        assert sids <= set(listed.stdout.split())

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listed = run_cli(data_dir, "sessions", "list", "--all", env=SHORT)
            assert listed.returncode == 0, listed.stderr
            if not sids & set(listed.stdout.split()):
                break
            time.sleep(0.5)
        assert not sids & set(listed.stdout.split())
