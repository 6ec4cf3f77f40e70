"""The soak's server (``bench/soak.py``): ``keyturn serve`` on a temporary data directory, restartable,
with users made by the CLI; and what its access log and session events say, counted.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench._soak_config import ME, REFRESH, SoakConfig
from tests._secrets import new_password
from tests.e2e._server import Server, launch_server, run_cli, stop_server, wait_ready


@dataclass
class ServerSide:
    refresh_status: Counter[str] = field(default_factory=Counter)
    me_status: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    revoked_reasons: Counter[str] = field(default_factory=Counter)
    timeline: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    """Per session id: (wall time, event) of its rotations, replays, reuse and revocation."""


def read_server_logs(logs: list[Path]) -> ServerSide:
    """Count the access log's refresh and ``/auth/me`` lines by status, and the session events."""
    side = ServerSide()
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            event = record.get("event")
            if isinstance(event, str):
                side.events[event] += 1
                if event == "session.revoked":
                    side.revoked_reasons[str(record.get("reason"))] += 1
                sid = record.get("sid")
                if isinstance(sid, str) and isinstance(record.get("time"), str):
                    when = datetime.fromisoformat(record["time"]).timestamp()
                    side.timeline.setdefault(sid, []).append((when, event))
                continue
            message = record.get("message")
            if record.get("logger") != "uvicorn.access" or not isinstance(message, str):
                continue
            status = message.rsplit(" ", 1)[-1]
            if f'"POST {REFRESH} ' in message:
                side.refresh_status[status] += 1
            elif f'"GET {ME} ' in message:
                side.me_status[status] += 1
    return side


class Service:
    """``keyturn serve`` on one data directory, restartable; every run's log is kept for counting."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.env = env
        self.server: Server | None = None
        self.logs: list[Path] = []

    def start(self) -> Server:
        server = launch_server(self.data_dir, self.env, "--log-level", "debug", "--access-log")
        self.logs.append(server.log)
        self.server = wait_ready(server)
        return server

    def stop(self) -> None:
        if self.server is not None:
            stop_server(self.server)

    def add_user(self, name: str) -> str:
        password = new_password()
        done = run_cli(
            self.data_dir, "users", "add", name, "--password-stdin", stdin=password + "\n", env=self.env
        )
        if done.returncode != 0:
            raise RuntimeError(f"keyturn users add failed ({done.returncode})")
        return password


@contextlib.contextmanager
def own_service(config: SoakConfig) -> Iterator[Service]:
    with tempfile.TemporaryDirectory(prefix="keyturn-soak-") as tmp:
        env = {
            "KEYTURN_ACCESS_TOKEN_LIFETIME": str(config.access_lifetime),
            "KEYTURN_LEEWAY": str(config.leeway),
            "KEYTURN_GRACE_PERIOD": str(config.grace_period),
            # The clients share one address and live hundreds of times faster than real ones (3 s tokens,
            # not 15 min): the per-address refresh limit, sized for real time, is raised out of their
            # reach. The per-session limit stays at its default, which a correct client never meets.
            "KEYTURN_RATE_LIMIT_REFRESH_PER_IP": "1000000/1",
        }
        service = Service(Path(tmp) / "data", env)
        service.data_dir.mkdir(mode=0o700)
        try:
            yield service
        finally:
            service.stop()
