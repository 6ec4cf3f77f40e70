"""Resource-server processes (the apps in ``tests/e2e/apps``) on loopback, for end-to-end tests.

Each app is a module run as ``python -m tests.e2e.apps.<name> --service URL --port N [ARGS]`` that answers
``GET /status`` without a token once it serves, and prints ``apps._listening.LISTENING`` once it holds its
port (no answer counts before that: it could come from another process that took the port meanwhile).
Its environment is the test's, minus every ``KEYTURN_*`` variable, plus ``env``; its output goes to a log
file next to the other logs of the test.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from .. import _logsweep
from ._server import free_port, stop_process
from .apps._listening import LISTENING

ROOT = Path(__file__).resolve().parents[2]
"""The repository: ``tests`` must be importable as a package for ``python -m tests.e2e.apps...``."""


@dataclass
class ResourceApp:
    """One running resource-server process."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    bound: str | None = None
    """A line the process logs once it holds its port; :func:`wait_app_ready` trusts no answer before it."""

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)  # type: ignore[arg-type]

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"


def resource_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def launch_app(
    module: str,
    service_url: str,
    log_dir: Path,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    name: str | None = None,
) -> ResourceApp:
    """Start ``python -m <module>`` without waiting for it; see :func:`wait_app_ready`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    name = name or module.rsplit(".", 1)[-1]
    log = log_dir / f"{name}-{port}.log"
    _logsweep.watch(log, f"{name} :{port}")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--service", service_url, "--port", str(port), *args],
            cwd=ROOT,
            env=resource_env(env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return ResourceApp(name, f"http://127.0.0.1:{port}", process, log, LISTENING.format(port=port))


def wait_app_ready(app: ResourceApp, timeout: float = 60, path: str = "/status") -> ResourceApp:
    """Wait until ``app``'s process has logged ``app.bound`` (it holds its port) and answers 200 on ``path``;
    stop it and raise if it exits or never does."""
    deadline = time.monotonic() + timeout
    holds_port = app.bound is None
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise RuntimeError(f"{app.name} exited with {app.process.returncode}: {app.log_text()}")
        holds_port = holds_port or (app.bound is not None and app.bound in app.log_text())
        if holds_port:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(app.url + path, timeout=2).status_code == 200 and app.process.poll() is None:
                    return app
        time.sleep(0.1)
    stop_app(app)
    raise RuntimeError(f"{app.name} did not answer {path} within {timeout}s: {app.log_text()}")


def stop_app(app: ResourceApp) -> None:
    stop_process(app.process, app.log)


@contextlib.contextmanager
def resource_apps(
    specs: Mapping[str, tuple[str, Sequence[str]]],
    service_url: str,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
) -> Iterator[dict[str, ResourceApp]]:
    """Start every app of ``specs`` (name -> (module, extra args)) at once, wait for all, stop all after."""
    started: dict[str, ResourceApp] = {}
    try:
        for name, (module, args) in specs.items():
            started[name] = launch_app(module, service_url, log_dir, args, env, name=name)
        for app in started.values():
            wait_app_ready(app)
        yield started
    finally:
        for app in started.values():
            stop_app(app)
