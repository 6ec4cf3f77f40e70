"""Real ``keyturn serve`` processes on loopback, for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .. import _logsweep
from .._secrets import new_password

KEYTURN = [sys.executable, "-m", "keyturn.server.cli"]
LOG_FLAGS = ("--log-level", "debug", "--access-log")
"""Every server logs every request and event, so the log sweep (``tests/_logsweep.py``) has real lines to
search; a test's own ``--log-level`` comes later on the command line and wins."""


class PortTaken(RuntimeError):
    """A server exited because another socket took its port between :func:`free_port` and its bind."""


QUIET_LEVELS = {"warning", "error", "critical"}
"""Log levels that hide uvicorn's startup line (:func:`bound_line`), which :func:`wait_ready` waits for."""

PORT_ATTEMPTS = 3
"""Ports a server started on a free port of its own is tried on: another process (another pytest-xdist
worker's server or client) can bind the port :func:`free_port` found before the server does, the more
likely the longer the server takes to start (seconds on a loaded CI worker)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keyturn_env(data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env["KEYTURN_DATA_DIR"] = str(data_dir)
    env.update(extra or {})
    return env


def run_cli(
    data_dir: Path, *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``keyturn ARGS`` against ``data_dir``; does not raise on a non-zero exit."""
    done = subprocess.run(
        [*KEYTURN, *args],
        input=stdin,
        text=True,
        capture_output=True,
        env=keyturn_env(data_dir, env),
        timeout=60,
        check=False,
    )
    _logsweep.record_output(" ".join(["keyturn", *args[:2]]), done.stdout, done.stderr)
    return done


@dataclass
class Server:
    """One running ``keyturn serve``."""

    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    log: Path

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)  # type: ignore[arg-type]


@dataclass
class Cluster:
    """Server processes sharing one data directory (one SQLite file, one key set)."""

    data_dir: Path
    servers: list[Server] = field(default_factory=list)
    username: str = "alice"
    password: str = field(default_factory=new_password, repr=False)

    @property
    def server(self) -> Server:
        """The first (often the only) server."""
        return self.servers[0]


def launch_server(
    data_dir: Path, env: Mapping[str, str] | None = None, *args: str, port: int | None = None
) -> Server:
    """Start ``keyturn serve`` (on ``port``, else a free one) without waiting for it (:func:`wait_ready`)."""
    levels = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--log-level"]
    if levels and levels[-1].lower() in QUIET_LEVELS:
        raise ValueError(f"--log-level {levels[-1]} hides uvicorn's startup line, which wait_ready waits for")
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    port = port or free_port()
    log = data_dir / f"server-{port}.log"
    _logsweep.watch(log, f"keyturn serve :{port}")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*KEYTURN, "serve", "--port", str(port), *LOG_FLAGS, *args],
            env=keyturn_env(data_dir, env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Server(f"http://127.0.0.1:{port}", process, data_dir, log)


def bound_line(base_url: str) -> str:
    """What uvicorn logs once it has bound ``base_url``'s port (``http://127.0.0.1:PORT``), at level info."""
    return f"Uvicorn running on {base_url} ("


def wait_serving(
    url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    what: str,
    timeout: float = 60,
    bound: str | None = None,
    verify: ssl.SSLContext | bool = True,
) -> None:
    """Wait until ``url`` answers 200; if ``process`` exits or never does, stop it and raise with its log.

    ``bound``: a line ``process`` logs once it holds its port (:func:`bound_line`). Until its log shows it, a
    200 does not count: it may come from another process that took the port :func:`free_port` found, while
    ``process`` has not tried to bind yet (it would then exit with "address already in use": PortTaken).
    ``verify``: how an ``https`` URL's certificate is checked (httpx's ``verify``).
    """
    deadline = time.monotonic() + timeout
    holds_port = bound is None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text(errors="replace")
            taken = "address already in use" in output.lower()
            raise (PortTaken if taken else RuntimeError)(f"{what} exited: {output}")
        holds_port = holds_port or (bound is not None and bound in log.read_text(errors="replace"))
        if holds_port:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1, verify=verify).status_code == 200 and process.poll() is None:
                    return
        time.sleep(0.1)
    stop_process(process, log)
    raise RuntimeError(f"{what} did not become ready: {log.read_text()}")


def wait_ready(server: Server, timeout: float = 60) -> Server:
    """Wait until ``server``'s own process has bound its port and answers ``/readyz``; kill it and raise if it
    never does."""
    wait_serving(
        server.url + "/readyz", server.process, server.log, "keyturn serve", timeout, bound_line(server.url)
    )
    return server


def start_server(
    data_dir: Path, env: Mapping[str, str] | None = None, *args: str, port: int | None = None
) -> Server:
    """Launch a server and wait until it is ready; on a port of its own, another one if that was taken."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        server = launch_server(data_dir, env, *args, port=port)
        try:
            return wait_ready(server)
        except PortTaken:
            _logsweep.collect(server.log)
            if port is not None or attempt == PORT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def start_servers(
    data_dir: Path, count: int, env: Mapping[str, str] | None = None, *args: str
) -> list[Server]:
    """Start ``count`` servers on one data directory at the same moment, then wait for all of them."""
    launched = [launch_server(data_dir, env, *args) for _ in range(count)]
    try:
        for i in range(count):
            for attempt in range(1, PORT_ATTEMPTS + 1):
                try:
                    wait_ready(launched[i])
                    break
                except PortTaken:
                    _logsweep.collect(launched[i].log)
                    if attempt == PORT_ATTEMPTS:
                        raise
                    launched[i] = launch_server(data_dir, env, *args)
    except BaseException:
        for server in launched:
            stop_server(server)
        raise
    return launched


def stop_server(server: Server) -> None:
    stop_process(server.process, server.log)


def stop_process(process: subprocess.Popen[bytes], log: Path) -> None:
    """Stop a server process (SIGTERM, then SIGKILL after 15 s) and hand its log to the log sweep."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    _logsweep.collect(log)


def add_user(data_dir: Path, name: str) -> str:
    """Add user ``name`` with the CLI; return their (random) password."""
    password = new_password()
    added = run_cli(data_dir, "users", "add", name, "--password-stdin", stdin=password + "\n")
    assert added.returncode == 0, added.stderr
    return password


@contextlib.contextmanager
def cluster(
    data_dir: Path,
    processes: int = 1,
    env: Mapping[str, str] | None = None,
    *args: str,
    port: int | None = None,
) -> Iterator[Cluster]:
    """``processes`` servers on one data directory, with one user ``alice`` already added; ``port``: the
    one server's port (a URL known before it starts, for ``KEYTURN_ISSUER``)."""
    group = Cluster(data_dir)
    added = run_cli(
        data_dir, "users", "add", group.username, "--password-stdin", stdin=group.password + "\n", env=env
    )
    assert added.returncode == 0, added.stderr
    try:
        for _ in range(processes):
            group.servers.append(start_server(data_dir, env, *args, port=port))
        yield group
    finally:
        for server in group.servers:
            stop_server(server)


@contextlib.contextmanager
def demo_service(workdir: Path) -> Iterator[Server]:
    """``keyturn serve`` on ``workdir/.keyturn`` with the user ``demo``, whose password is in
    ``.keyturn/demo-password`` as ``make run`` leaves it: the README's and the docs' starting point."""
    data_dir = workdir / ".keyturn"
    data_dir.mkdir(mode=0o700)
    password = new_password()
    (data_dir / "demo-password").write_text(password + "\n")
    add = run_cli(data_dir, "users", "add", "demo", "--password-stdin", stdin=password + "\n")
    assert add.returncode == 0, add.stderr
    server = start_server(data_dir)
    try:
        yield server
    finally:
        stop_server(server)
