"""Server logs are JSON lines and carry no token or password, even at debug level with access logs."""

from __future__ import annotations

import json
from pathlib import Path

from ._http import bearer, login, refreshed
from ._server import cluster, start_server, stop_server


def test_logs_are_json_lines_without_tokens_or_passwords(tmp_path: Path) -> None:
    """Logs go to other systems and other people: a token or password in one is a leaked credential."""
    data_dir = tmp_path / "data"
    with cluster(data_dir, 0) as group:
        server = start_server(data_dir, None, "--log-level", "debug", "--access-log")
        try:
            secrets_seen: list[str] = [group.password]
            with server.client() as http:
                pair = login(http, group.username, group.password)
                rotated = refreshed(http, pair["refresh_token"])
                replayed = refreshed(http, pair["refresh_token"])
                secrets_seen += [pair["access_token"], pair["refresh_token"], rotated["refresh_token"]]
                secrets_seen += [rotated["access_token"], replayed["access_token"]]
                http.post(
                    "/auth/login", json={"username": group.username, "password": "wrong-" + group.password}
                )
                http.post(
                    "/auth/refresh", content=b"[" * 50_000, headers={"content-type": "application/json"}
                )
                http.post("/auth/logout", headers=bearer(rotated["access_token"]))
                http.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        finally:
            stop_server(server)
        lines = [line for line in server.log.read_text().splitlines() if line.strip()]

    assert len(lines) >= 10  # startup, every request, session events at debug level
    events = set()
    for line in lines:
        record = json.loads(line)  # every line is one JSON object
        events.add(record.get("event"))
        leaked = any(secret in line for secret in secrets_seen)
        assert not leaked, f"a credential appears in a {record.get('logger')} log line"
    assert {"session.started", "session.rotated", "session.replayed", "session.revoked"} <= events
