"""`keyturn keys rotate` reaches running servers without a restart; old tokens keep working."""

from __future__ import annotations

import time
from pathlib import Path

from ._http import jwt_parts, login, me, refreshed, why
from ._server import cluster, run_cli


def test_rotation_reaches_running_servers_and_old_tokens_still_verify(tmp_path: Path) -> None:
    """Operators rotate keys on a live service: nobody may be logged out by it, and new keys must sign."""
    data_dir = tmp_path / "data"
    with cluster(data_dir, 2, {"KEYTURN_KEY_RELOAD_INTERVAL": "0.5"}) as group:
        a, b = group.servers
        with a.client() as http_a, b.client() as http_b:
            before = login(http_a, group.username, group.password)
            old_kid = jwt_parts(before["access_token"])[0]["kid"]

            rotated = run_cli(data_dir, "keys", "rotate")
            assert rotated.returncode == 0, rotated.stderr

            # Both servers start signing with the new key within a few reload intervals.
            deadline = time.monotonic() + 30
            kids: set[str] = {old_kid}
            while time.monotonic() < deadline:
                kids = {
                    jwt_parts(login(http, group.username, group.password)["access_token"])[0]["kid"]
                    for http in (http_a, http_b)
                }
                if old_kid not in kids:
                    break
                time.sleep(0.25)
            assert old_kid not in kids
            assert len(kids) == 1

            # The token signed before the rotation still verifies, and its refresh token still rotates.
            assert me(http_b, before["access_token"]).status_code == 200
            after = refreshed(http_b, before["refresh_token"])
            assert jwt_parts(after["access_token"])[0]["kid"] in kids
            checked = me(http_a, after["access_token"])
            assert checked.status_code == 200, why(checked)

            published = {k["kid"] for k in http_a.get("/.well-known/jwks.json").json()["keys"]}
            assert {old_kid, *kids} <= published
