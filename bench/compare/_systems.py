"""The systems under test: server processes on loopback, and how the load generator talks to each.

- SimpleJWT: ``simplejwt_app.py`` (SQLite) under gunicorn, 2 workers, in the comparison's own venv; its
  protected endpoint is a DRF view in the same Django app.
- Keyturn: ``keyturn serve`` processes in a temporary data directory with a throwaway user, one process on
  SQLite (the default), or two processes on one PostgreSQL schema or Redis prefix (sessions are spread over
  both); its protected endpoint is ``keyturn_resource.py`` under uvicorn, 2 workers.

A :class:`System` names the paths and JSON fields of one token service; :class:`Resource` one protected
endpoint. Every process's output goes to a log file in the run's temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEYTURN = [sys.executable, "-m", "keyturn.server.cli"]
USER = "bench"
RATE_LIMITS_OUT_OF_REACH = {
    f"KEYTURN_RATE_LIMIT_{name}": "1000000/1"
    for name in ("REFRESH_PER_IP", "REFRESH_PER_SESSION", "LOGIN_PER_IP", "LOGIN_PER_USERNAME_IP")
}
"""Keyturn's rate limits stay on (each refresh and login still takes its buckets in the store) but so high
that the load generator, every session on one address, never meets them."""


@dataclass(frozen=True, slots=True)
class Api:
    """Where a token service logs in and refreshes, and what its JSON fields are called."""

    login_path: str
    refresh_path: str
    refresh_field: str
    """The refresh token's name, in the refresh request and in both answers."""
    access_field: str


KEYTURN_API = Api("/auth/login", "/auth/refresh", "refresh_token", "access_token")
SIMPLEJWT_API = Api("/api/token/", "/api/token/refresh/", "refresh", "access")


@dataclass
class System:
    """One token service: its processes' URLs (sessions are spread over them) and its user."""

    key: str
    label: str
    family: str
    """``simplejwt`` or ``keyturn``."""
    setup: str
    """How it runs, in a few words, for the report."""
    api: Api
    urls: list[str]
    password: str = field(repr=False)
    grace_period: float | None = None
    """Keyturn's ``GRACE_PERIOD`` (``None``: SimpleJWT, which has none)."""
    mint: list[str] = field(default_factory=list)
    """A command printing ``{"refresh", "access"}`` lines for the count appended to it: new sessions, made
    as the login endpoint makes them once the password is checked."""
    env: dict[str, str] = field(default_factory=dict, repr=False)
    """The environment of the service's processes (and of ``mint``)."""

    def url(self, index: int) -> str:
        return self.urls[index % len(self.urls)]


@dataclass
class Resource:
    """One protected endpoint: ``GET path`` with ``Authorization: Bearer <access token of system>``."""

    key: str
    label: str
    family: str
    setup: str
    urls: list[str]
    path: str
    system: System

    def url(self, index: int) -> str:
        return self.urls[index % len(self.urls)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """Every process the run started, stopped (SIGTERM, then SIGKILL) in reverse order at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._started: list[_Started] = []

    def spawn(
        self, name: str, argv: list[str], env: Mapping[str, str], ready_url: str, cwd: Path | None = None
    ) -> None:
        """Start ``argv``; :meth:`wait_ready` then waits until ``GET ready_url`` answers 200."""
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        self._started.append(_Started(name, proc, log, ready_url))

    def wait_ready(self, timeout: float = 90) -> None:
        """Wait until every process started so far answers its readiness URL; raise with the log of one that
        died."""
        deadline = time.monotonic() + timeout
        for started in self._started:
            while not started.ready:
                if started.proc.poll() is not None:
                    tail = started.log.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{started.name} exited with {started.proc.returncode}:\n{tail}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{started.name} did not answer {started.ready_url} in {timeout:g} s")
                with (
                    contextlib.suppress(OSError),
                    urllib.request.urlopen(started.ready_url, timeout=1) as answer,  # noqa: S310 (our loopback URL)
                ):
                    started.ready = answer.status == 200
                if not started.ready:
                    time.sleep(0.1)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user and system) each process started here, with the processes it started (gunicorn's
        and uvicorn's workers), has used so far, from ``/proc`` (Linux)."""
        ticks = os.sysconf("SC_CLK_TCK")
        parent: dict[int, int] = {}
        used: dict[int, float] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fields = (entry / "stat").read_text().rpartition(")")[2].split()
                    parent[int(entry.name)] = int(fields[1])
                    used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks

        def tree(pid: int) -> float:
            return used.get(pid, 0.0) + sum(tree(child) for child, up in parent.items() if up == pid)

        return {started.name: tree(started.proc.pid) for started in self._started}

    def stop_all(self, signum: int = signal.SIGTERM) -> None:
        for started in reversed(self._started):
            if started.proc.poll() is None:
                started.proc.send_signal(signum)
        for started in reversed(self._started):
            try:
                started.proc.wait(15)
            except subprocess.TimeoutExpired:
                started.proc.kill()
                started.proc.wait(5)
        self._started.clear()


@dataclass
class _Started:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    ready_url: str
    ready: bool = False


def _run(argv: list[str], stdin: str, env: Mapping[str, str]) -> None:
    """Run a set-up command; if it fails, raise with what it printed."""
    done = subprocess.run(argv, input=stdin, text=True, env=dict(env), capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[1:3])}... failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )


def _keyturn_env(data_dir: Path, extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env["KEYTURN_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def start_keyturn(
    processes: Processes,
    key: str,
    label: str,
    setup: str,
    count: int,
    store_url: str | None = None,
    grace_period: float | None = None,
    extra_env: Mapping[str, str] | None = None,
    wrapper: Sequence[str] = (),
) -> System:
    """``count`` ``keyturn serve`` processes on one store and data directory, with the user ``bench``.

    ``extra_env`` adds to (or overrides) the ``KEYTURN_*`` settings; ``wrapper`` runs each server under
    another command (``python -m cProfile -o FILE``, for one)."""
    data_dir = processes.workdir / key
    data_dir.mkdir(mode=0o700)
    extra = {**RATE_LIMITS_OUT_OF_REACH, **({"KEYTURN_STORE_URL": store_url} if store_url else {})}
    if grace_period is not None:
        extra["KEYTURN_GRACE_PERIOD"] = f"{grace_period:g}"
    extra.update(extra_env or {})
    env = _keyturn_env(data_dir, extra)
    password = secrets.token_urlsafe(12)
    _run([*KEYTURN, "users", "add", USER, "--password-stdin", "--exist-ok"], password + "\n", env)
    command = [*wrapper, *KEYTURN[1:]] if wrapper else KEYTURN
    urls = []
    for index in range(count):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        processes.spawn(f"{key}-{index}", [*command, "serve", "--port", str(port)], env, url + "/readyz")
        urls.append(url)
    grace = 30.0 if grace_period is None else grace_period
    mint = [sys.executable, str(HERE / "_mint_keyturn.py"), USER]
    return System(key, label, "keyturn", setup, KEYTURN_API, urls, password, grace, mint, env)


def start_simplejwt(processes: Processes, venv_python: Path, workers: int, worker_class: str) -> System:
    """SimpleJWT under gunicorn in the comparison's venv, its database migrated and its user added."""
    data_dir = processes.workdir / "simplejwt"
    env = {**os.environ, "SIMPLEJWT_BENCH_DIR": str(data_dir)}
    password = secrets.token_urlsafe(12)
    _run([str(venv_python), str(HERE / "simplejwt_app.py"), "setup", USER], password + "\n", env)
    port = free_port()
    gunicorn = [str(venv_python), "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"]
    gunicorn += ["--workers", str(workers), "--worker-class", worker_class, "--no-control-socket"]
    gunicorn.append("simplejwt_app:wsgi()")
    url = f"http://127.0.0.1:{port}"
    processes.spawn("simplejwt", gunicorn, env, url + "/api/status/", cwd=HERE)
    setup = f"SQLite, gunicorn, {workers} {worker_class} workers"
    mint = [str(venv_python), str(HERE / "simplejwt_app.py"), "mint", USER]
    return System(
        "simplejwt", "SimpleJWT", "simplejwt", setup, SIMPLEJWT_API, [url], password, None, mint, env
    )


EXAMPLE = HERE.parent.parent / "examples" / "django_simplejwt"


def start_keyturn_django(
    processes: Processes,
    workers: int,
    worker_class: str,
    wrapper: Sequence[str] = (),
    *,
    key: str = "keyturn-django",
    label: str = "Keyturn · Django drop-in",
    src: Path | None = None,
) -> System:
    """The example Django project on ``keyturn.django`` (SimpleJWT's routes, Keyturn behind them) under
    gunicorn with SimpleJWT's workers, its database SQLite as SimpleJWT's is, in Keyturn's own venv.

    ``wrapper`` runs gunicorn under another command (``py-spy record ... --``, for one); ``src`` is another
    Keyturn's ``src`` directory to import ``keyturn`` from (an older commit's, to compare with)."""
    data_dir = processes.workdir / key
    data_dir.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env.update(
        {
            "TOKENS": "keyturn",
            "DJANGO_SETTINGS_MODULE": "django_settings",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
            "DATABASE": f"sqlite:///{data_dir / 'db.sqlite3'}",
            "PYTHONPATH": os.pathsep.join([*([str(src)] if src else []), str(EXAMPLE), str(HERE)]),
        }
    )
    password = secrets.token_urlsafe(12)
    _run([sys.executable, str(HERE / "_django_project.py"), "setup", USER], password + "\n", env)
    port = free_port()
    gunicorn = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"]
    gunicorn += ["--workers", str(workers), "--worker-class", worker_class, "--no-control-socket"]
    gunicorn.append("project.wsgi")
    gunicorn = [*wrapper, *gunicorn]
    url = f"http://127.0.0.1:{port}"
    processes.spawn(key, gunicorn, env, url + "/api/status/", cwd=EXAMPLE)
    setup = f"SQLite, gunicorn, {workers} {worker_class} workers (keyturn.django)"
    mint = [sys.executable, str(HERE / "_django_project.py"), "mint", USER]
    return System(key, label, "keyturn", setup, SIMPLEJWT_API, [url], password, 30.0, mint, env)


def keyturn_django_resource(service: System) -> Resource:
    return Resource(
        "keyturn-django-drf",
        "KeyturnAuthentication (DRF, keyturn.django)",
        "keyturn",
        f"DRF view + KeyturnAuthentication in the same Django app ({service.setup})",
        service.urls,
        "/api/me/",
        service,
    )


def start_keyturn_resource(processes: Processes, service: System, count: int) -> Resource:
    """``count`` uvicorn processes of ``keyturn_resource.py``, each verifying the tokens of ``service`` with
    its JWKS and its revocation feed; sessions are spread over them."""
    processes.wait_ready()  # the service first
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env["KEYTURN_BENCH_SERVICE_URL"] = service.urls[0]
    urls = []
    for index in range(count):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        uvicorn = [sys.executable, "-m", "uvicorn", "--factory", "keyturn_resource:make_app"]
        uvicorn += [
            "--app-dir",
            str(HERE),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        processes.spawn(f"keyturn-resource-{index}", uvicorn, env, url + "/status")
        urls.append(url)
    return Resource(
        "keyturn-fastapi",
        "Keyturn middleware (FastAPI)",
        "keyturn",
        f"FastAPI + KeyturnMiddleware, uvicorn, {count} processes",
        urls,
        "/api/me/",
        service,
    )


def simplejwt_resource(service: System) -> Resource:
    return Resource(
        "simplejwt-drf",
        "SimpleJWT JWTAuthentication (DRF)",
        "simplejwt",
        f"DRF APIView + JWTAuthentication in the same Django app ({service.setup})",
        service.urls,
        "/api/me/",
        service,
    )


@contextlib.contextmanager
def processes_in(workdir: Path) -> Iterator[Processes]:
    processes = Processes(workdir)
    try:
        yield processes
    finally:
        processes.stop_all()
