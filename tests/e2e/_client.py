"""Helpers for the Python client's end-to-end tests (``test_client*.py``).

What the token service did is read from its own access log (``keyturn serve --access-log --log-level
info``): one JSON line per request, with ``"METHOD /path HTTP/1.1" STATUS`` in its message. A request the
client has seen answered may not be in the log yet, so :func:`synced_requests` first sends a marker request
and waits for its line: every request answered before it is then in the log too.

Nothing here shows a token: the log holds paths and statuses only, and tokens are compared by fingerprint.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from keyturn.client import State, TokenManager

from .. import _logsweep
from ._http import jwt_parts
from ._resource import ROOT, resource_env
from ._server import Server

ACCESS_LINE = re.compile(r'^"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[0-9.]+" (?P<status>\d{3})')
LOG_DEADLINE = 30.0
"""How long a request's line may take to reach the log file (a slow, busy machine)."""


@dataclass(frozen=True)
class Request:
    """One line of a server's access log."""

    method: str
    path: str
    status: int


def _log_records(server: Server) -> list[dict[str, Any]]:
    records = []
    for line in server.log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short while being written
        if isinstance(record, dict):
            records.append(record)
    return records


def _access(records: list[dict[str, Any]]) -> list[tuple[Request, str]]:
    found = []
    for record in records:
        if record.get("logger") != "uvicorn.access":
            continue
        # "127.0.0.1:PORT - \"GET /path HTTP/1.1\" 200"
        message = str(record.get("message", ""))
        match = ACCESS_LINE.search(message.split(" - ", 1)[-1])
        if match:
            target = match["target"]
            found.append((Request(match["method"], target.split("?", 1)[0], int(match["status"])), target))
    return found


def synced_requests(server: Server) -> list[Request]:
    """Every request the server has logged, once every request answered before this call is logged."""
    marker = f"/healthz?sync={uuid.uuid4().hex}"
    answer = httpx.get(server.url + marker, timeout=30)
    assert answer.status_code == 200, answer.status_code
    deadline = time.monotonic() + LOG_DEADLINE
    while True:
        logged = _access(_log_records(server))
        if any(target == marker for _, target in logged):
            return [request for request, target in logged if not target.startswith("/healthz?sync=")]
        assert time.monotonic() < deadline, "the server's access log never showed the marker request"
        time.sleep(0.05)


def events(server: Server, name: str) -> list[dict[str, Any]]:
    """The structured events ``name`` (``session.rotated``, ...) in the server's log so far."""
    return [r for r in _log_records(server) if r.get("event") == name]


class Tally:
    """Requests the server logged since the tally was made: ``tally.count("POST", "/auth/refresh")``."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._start = len(synced_requests(server))

    def since(self) -> list[Request]:
        return synced_requests(self.server)[self._start :]

    def count(self, method: str, path: str, status: int | None = None) -> int:
        return sum(
            r.method == method and r.path == path and (status is None or r.status == status)
            for r in self.since()
        )

    def statuses(self, method: str, path: str) -> Counter[int]:
        return Counter(r.status for r in self.since() if r.method == method and r.path == path)


@dataclass
class Hooks:
    """Records what a :class:`TokenManager` reports through its callbacks (thread-safe)."""

    ended: list[str] = field(default_factory=list)
    states: list[State] = field(default_factory=list)
    refreshed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def on_session_ended(self, reason: str) -> None:
        with self._lock:
            self.ended.append(reason)

    def on_state(self, state: State) -> None:
        with self._lock:
            self.states.append(state)

    def on_refreshed(self, tokens: object) -> None:
        with self._lock:
            self.refreshed += 1

    def kwargs(self) -> dict[str, Any]:
        return {
            "on_session_ended": self.on_session_ended,
            "on_state": self.on_state,
            "on_refreshed": self.on_refreshed,
        }


def access_exp(manager: TokenManager) -> float:
    """The ``exp`` claim of the manager's current access token (server time)."""
    tokens = manager.tokens
    assert tokens is not None, "the manager holds no tokens"
    exp: float = jwt_parts(tokens.access_token)[1]["exp"]
    return exp


def wait_until_expired(manager: TokenManager, slack: float = 0.1) -> None:
    """Sleep until the manager's access token has expired on the server (its ``exp`` claim) by ``slack``.

    Waiting out a token's lifetime is the one fixed wait these tests make.
    """
    until = max(access_exp(manager), _tokens_expiry(manager)) + slack
    while (left := until - manager.server_now()) > 0:
        time.sleep(min(left, 0.5))


def _tokens_expiry(manager: TokenManager) -> float:
    tokens = manager.tokens
    assert tokens is not None
    return tokens.access_expires_at


def refresh_generation(refresh_token: str) -> int:
    gen: int = jwt_parts(refresh_token)[1]["gen"]
    return gen


def signed_in(
    url: str, username: str, password: str, hooks: Hooks, refresh_margin: float = 0.1, **kwargs: Any
) -> TokenManager:
    """A manager logged in as ``username``, reporting to ``hooks``.

    Its refresh margin is tiny by default: it refreshes at the expiry, not ahead of it.
    """
    manager = TokenManager(url, refresh_margin=refresh_margin, jitter=0.0, **hooks.kwargs(), **kwargs)
    manager.login(username, password)
    return manager


def token_file_client(
    mode: str, url: str, path: Path, *args: str, password: str | None = None
) -> subprocess.Popen[str]:
    """Start ``python -m tests.e2e.apps.token_file_client MODE`` (see :func:`result_of`)."""
    env = resource_env({"TOKEN_FILE_PASSWORD": password} if password else None)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.e2e.apps.token_file_client",
            mode,
            "--url",
            url,
            "--file",
            str(path),
            *args,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def result_of(process: subprocess.Popen[str]) -> dict[str, Any]:
    """The process's one JSON line of statuses, once it has exited 0."""
    try:
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    _logsweep.record_output("token_file_client", out, err)
    assert process.returncode == 0, f"exited with {process.returncode}: {err[-2000:]}"
    lines = out.strip().splitlines()
    assert lines, "it printed nothing"
    result: dict[str, Any] = json.loads(lines[-1])
    return result
